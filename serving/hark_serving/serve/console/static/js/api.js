// Every call to the Hark API: the bearer token (kept for this tab only), and the API's own
// error messages ({"error": {"code", "message"}}) surfaced as ApiError.

const TOKEN_KEY = "hark.token";

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function authHeaders(given) {
  const value = given ?? token();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

function errorFrom(status, text, retryAfter) {
  let code = `http_${status}`;
  let message = text && text.length < 500 ? text : `HTTP ${status}`;
  try {
    const body = JSON.parse(text);
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // Not JSON (a proxy's page): keep the status.
  }
  const seconds = retryAfter ? Number.parseInt(retryAfter, 10) : null;
  return new ApiError(status, code, message, Number.isFinite(seconds) ? seconds : null);
}

// Relative URLs: the console works under any path prefix a proxy puts it behind.
export async function request(path, { method = "GET", body, tokenOverride, accept } = {}) {
  const headers = { ...authHeaders(tokenOverride) };
  if (accept) headers.Accept = accept;
  if (body !== undefined && typeof body === "string") headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body, credentials: "same-origin" });
  } catch (exc) {
    throw new ApiError(0, "network", exc.message || "network error");
  }
  if (!response.ok) {
    throw errorFrom(response.status, await response.text(), response.headers.get("Retry-After"));
  }
  return response;
}

export async function getJSON(path, options) {
  return (await request(path, options)).json();
}

// An upload with progress: XHR, because fetch reports no upload progress.
export function upload(path, form, { onProgress, onUploaded } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [key, value] of Object.entries(authHeaders())) xhr.setRequestHeader(key, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total);
    });
    xhr.upload.addEventListener("load", () => onUploaded && onUploaded());
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch (exc) {
          reject(new ApiError(xhr.status, "invalid_response", exc.message));
        }
      } else {
        reject(errorFrom(xhr.status, xhr.responseText, xhr.getResponseHeader("Retry-After")));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network", "network error")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "aborted")));
    xhr.send(form);
  });
}
