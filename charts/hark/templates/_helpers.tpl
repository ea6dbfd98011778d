{{/*
Names and labels.

Kubernetes object names that end up in DNS (Services, and the label values that
select pods) are DNS-1123 labels: at most 63 characters. Helm does not shorten
anything for us, so every name here is cut to fit ("trunc 63") and a trailing
dash left by the cut is removed ("trimSuffix"). Names with a component suffix
cut the base first and keep the suffix whole, so two components of one long
release never collapse into the same truncated name.
*/}}

{{/* The chart name (app.kubernetes.io/name). */}}
{{- define "hark.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of every resource: `<release>-hark`, or `<release>` when the
release name already contains the chart name (`helm install hark ...` gives
`hark`, not `hark-hark`).
*/}}
{{- define "hark.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
`<fullname>-<suffix>` in at most 63 characters, the suffix kept whole.
Call with (list $ "suffix").
*/}}
{{- define "hark.componentName" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- $base := include "hark.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{/*
The RayService name. KubeRay appends 6 characters for the RayCluster and
"-serve-svc" for its Service, so it accepts at most 47 characters, starting
with a letter (DNS-1035).
*/}}
{{- define "hark.rayServiceName" -}}
{{- include "hark.fullname" . | trunc 47 | trimSuffix "-" }}
{{- end }}

{{/* The Service in front of the HTTP API (the operator's HARK_SERVE_URL). */}}
{{- define "hark.serveServiceName" -}}
{{- include "hark.componentName" (list . "serve") }}
{{- end }}

{{- define "hark.operatorName" -}}
{{- include "hark.componentName" (list . "operator") }}
{{- end }}

{{- define "hark.configMapName" -}}
{{- include "hark.componentName" (list . "config") }}
{{- end }}

{{- define "hark.peeringName" -}}
{{- default (include "hark.fullname" .) .Values.operator.peering.name }}
{{- end }}

{{/* Chart label value: name-version, `+` is not allowed in label values. */}}
{{- define "hark.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select this release's pods; they never change across upgrades. */}}
{{- define "hark.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hark.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "hark.labels" -}}
helm.sh/chart: {{ include "hark.chart" . }}
{{ include "hark.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hark
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component; call with (list $ "operator"). */}}
{{- define "hark.componentSelectorLabels" -}}
{{ include "hark.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Labels of one component's resources; call with (list $ "operator"). */}}
{{- define "hark.componentLabels" -}}
{{ include "hark.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* ServiceAccount names. */}}
{{- define "hark.operatorServiceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "hark.operatorName" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "hark.rayServiceAccountName" -}}
{{- if .Values.ray.serviceAccount.create }}
{{- default (include "hark.componentName" (list . "ray")) .Values.ray.serviceAccount.name }}
{{- else }}
{{- required "ray.serviceAccount.name is required when ray.serviceAccount.create is false" .Values.ray.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}; the tag defaults to the
chart's appVersion. Call with (list $ .Values.operator.image).
*/}}
{{- define "hark.image" -}}
{{- $root := index . 0 }}
{{- $image := index . 1 }}
{{- $tag := default $root.Chart.AppVersion $image.tag }}
{{- if $image.digest }}
{{- printf "%s:%s@%s" $image.repository $tag $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository $tag }}
{{- end }}
{{- end }}

{{/* Where the chart's config file lives in every container. */}}
{{- define "hark.configDir" -}}/etc/hark/config{{- end }}
{{- define "hark.authDir" -}}/etc/hark/auth{{- end }}
{{- define "hark.profilesPath" -}}{{ include "hark.configDir" . }}/storage-profiles.yaml{{- end }}

{{/* Where a profile's credentials are mounted in Ray pods; call with the profile name. */}}
{{- define "hark.credentialsDir" -}}/etc/hark/s3/{{ . }}{{- end }}

{{/*
The Secret holding a profile's credentials, or "" when it has none (the pods'
own AWS identity is used). Call with (list $ "<profile name>" <profile>).
*/}}
{{- define "hark.profileSecretName" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $creds := (index . 2).credentials | default dict }}
{{- if $creds.existingSecret }}
{{- $creds.existingSecret }}
{{- else if or $creds.accessKeyId $creds.secretAccessKey }}
{{- include "hark.componentName" (list $root (printf "s3-%s" $name)) }}
{{- end }}
{{- end }}

{{/*
The storage profiles in effect, as JSON: `storage.profiles`, or one `default`
profile (AWS, the pods' own identity) when none are defined. Profiles are a
map, so a values file that defines its own replaces the default instead of
merging with it.
*/}}
{{- define "hark.profiles" -}}
{{- .Values.storage.profiles | default (dict "default" dict) | toJson }}
{{- end }}

{{/* The profile Secrets the operator may read, sorted, without duplicates. */}}
{{- define "hark.profileSecretNames" -}}
{{- $names := list }}
{{- range $name, $profile := include "hark.profiles" . | fromJson }}
{{- $secret := include "hark.profileSecretName" (list $ $name $profile) }}
{{- if $secret }}
{{- $names = append $names $secret }}
{{- end }}
{{- end }}
{{- $names | uniq | sortAlpha | toJson }}
{{- end }}

{{/* The name of the API token Secret ("" when auth is off). */}}
{{- define "hark.authSecretName" -}}
{{- if .Values.auth.enabled }}
{{- default (include "hark.componentName" (list . "api-token")) .Values.auth.existingSecret }}
{{- end }}
{{- end }}

{{/*
Replicas of the Transcriber per worker pod: one per GPU, or one on a CPU-only
pool. The operator's floor and ceiling are the pool's bounds times this.
*/}}
{{- define "hark.replicasPerWorker" -}}
{{- max 1 (int .Values.ray.workers.gpusPerWorker) }}
{{- end }}

{{- define "hark.scaleMinReplicas" -}}
{{- mul (int .Values.ray.workers.minReplicas) (int (include "hark.replicasPerWorker" .)) }}
{{- end }}

{{- define "hark.scaleMaxReplicas" -}}
{{- mul (int .Values.ray.workers.maxReplicas) (int (include "hark.replicasPerWorker" .)) }}
{{- end }}

{{/*
Cross-field checks the JSON schema cannot express; each names the values at fault.
Included by the templates that depend on them (it renders nothing).
*/}}
{{- define "hark.validate" -}}
{{- if gt (int .Values.ray.workers.minReplicas) (int .Values.ray.workers.maxReplicas) }}
{{- fail (printf "ray.workers.minReplicas (%d) must not exceed ray.workers.maxReplicas (%d)" (int .Values.ray.workers.minReplicas) (int .Values.ray.workers.maxReplicas)) }}
{{- end }}
{{- if and (gt (int .Values.operator.replicas) 1) (not .Values.operator.peering.enabled) }}
{{- fail (printf "operator.replicas (%d) above 1 needs operator.peering.enabled, or the instances would handle the same jobs twice" (int .Values.operator.replicas)) }}
{{- end }}
{{- range $part := list "ingress" "worker" }}
{{- $d := index $.Values.serve $part }}
{{- if gt (int $d.minReplicas) (int $d.maxReplicas) }}
{{- fail (printf "serve.%s.minReplicas (%d) must not exceed serve.%s.maxReplicas (%d)" $part (int $d.minReplicas) $part (int $d.maxReplicas)) }}
{{- end }}
{{- end }}
{{- $profiles := include "hark.profiles" . | fromJson }}
{{- if not (hasKey $profiles .Values.storage.defaultProfile) }}
{{- fail (printf "storage.defaultProfile %q is not among storage.profiles (%s)" .Values.storage.defaultProfile (keys $profiles | sortAlpha | join ", ")) }}
{{- end }}
{{- range $name, $profile := include "hark.profiles" . | fromJson }}
{{- $creds := $profile.credentials | default dict }}
{{- if and (not $creds.existingSecret) (ne (empty $creds.accessKeyId) (empty $creds.secretAccessKey)) }}
{{- fail (printf "storage.profiles.%s.credentials: set both accessKeyId and secretAccessKey, or existingSecret, or neither" $name) }}
{{- end }}
{{- end }}
{{- if and .Values.operator.alerts.webhook.url (not .Values.operator.alerts.webhook.existingSecret) }}
{{- fail "operator.alerts.webhook.url needs operator.alerts.webhook.existingSecret: the Secret holding the key the alerts are signed with" }}
{{- end }}
{{- if lt (int .Values.ray.terminationGracePeriodSeconds) 600 }}
{{- fail (printf "ray.terminationGracePeriodSeconds (%d) must be at least 600, the time a Worker replica drains its requests; shorter, and scale-down or a node drain cuts work short" (int .Values.ray.terminationGracePeriodSeconds)) }}
{{- end }}
{{- if .Values.serve.ingressResource.enabled }}
{{- range .Values.serve.ingressResource.hosts }}
{{- range .paths }}
{{- if or (has .path (list "/" "/v1" "/v1/")) (hasPrefix "/v1/items" .path) (hasPrefix "/metrics" .path) }}
{{- fail (printf "serve.ingressResource: the path %q would make /v1/items or /metrics public; route only /v1/transcribe, /v1/audio/transcriptions and /healthz" .path) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" (include "hark.rayServiceName" .)) }}
{{- fail (printf "the RayService name %q must start with a letter (KubeRay needs a DNS-1035 label); set fullnameOverride" (include "hark.rayServiceName" .)) }}
{{- end }}
{{- end }}

{{/*
HARK_* settings shared by every Ray container (the data plane's Settings,
serving/hark_serving/config.py, reads them in every replica).
*/}}
{{- define "hark.rayEnv" -}}
- name: HARK_MODEL
  value: {{ .Values.model.source | quote }}
- name: HARK_MODEL_HUB
  value: {{ .Values.model.hub | quote }}
- name: HARK_MODEL_CACHE
  value: {{ .Values.model.cache.mountPath | quote }}
- name: HARK_VAD
  value: {{ .Values.model.vad | quote }}
- name: HARK_STORAGE_PROFILES
  value: {{ include "hark.profilesPath" . | quote }}
- name: HARK_LOG_LEVEL
  value: {{ .Values.serve.logLevel | quote }}
- name: HARK_LOG_FORMAT
  value: json
{{- if .Values.auth.enabled }}
{{- /* Files, not variables: a rotated Secret reaches the replicas without a restart. */}}
- name: HARK_API_TOKEN_FILE
  value: {{ printf "%s/%s" (include "hark.authDir" .) .Values.auth.secretKey | quote }}
- name: HARK_ITEMS_TOKEN_FILE
  value: {{ printf "%s/%s" (include "hark.authDir" .) .Values.auth.itemsSecretKey | quote }}
{{- end }}
- name: HARK_UPLOAD_DIR
  value: {{ .Values.serve.spool.mountPath | quote }}
{{- /* Admission control inside Serve's HTTP proxy, which buffers request bodies. */}}
- name: RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH
  value: hark_serving.serve.proxy_guard.middlewares
{{- if .Values.console.jobs.enabled }}
- name: HARK_CONSOLE_JOBS_NAMESPACES
  value: {{ include "hark.consoleJobsNamespaces" . | default "*" | quote }}
{{- end }}
{{- with .Values.serve.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volume mounts of every Ray container. */}}
{{- define "hark.rayVolumeMounts" -}}
- name: shm
  mountPath: /dev/shm
- name: model-cache
  mountPath: {{ .Values.model.cache.mountPath }}
  {{- if and .Values.model.cache.existingClaim .Values.model.cache.readOnly }}
  readOnly: true
  {{- end }}
- name: config
  mountPath: {{ include "hark.configDir" . }}
  readOnly: true
- name: spool
  mountPath: {{ .Values.serve.spool.mountPath }}
{{- if .Values.auth.enabled }}
- name: auth
  mountPath: {{ include "hark.authDir" . }}
  readOnly: true
{{- end }}
{{- range $name, $profile := include "hark.profiles" . | fromJson }}
{{- if include "hark.profileSecretName" (list $ $name $profile) }}
- name: s3-{{ $name }}
  mountPath: {{ include "hark.credentialsDir" $name }}
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/* Volumes of every Ray pod. */}}
{{- define "hark.rayVolumes" -}}
- name: shm
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.ray.sharedMemorySizeLimit }}
- name: model-cache
  {{- if .Values.model.cache.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.model.cache.existingClaim }}
    {{- if .Values.model.cache.readOnly }}
    readOnly: true
    {{- end }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .Values.model.cache.sizeLimit }}
  {{- end }}
- name: config
  configMap:
    name: {{ include "hark.configMapName" . }}
- name: spool
  emptyDir:
    sizeLimit: {{ .Values.serve.spool.sizeLimit }}
{{- if .Values.auth.enabled }}
- name: auth
  secret:
    secretName: {{ include "hark.authSecretName" . }}
    defaultMode: 0440
{{- end }}
{{- range $name, $profile := include "hark.profiles" . | fromJson }}
{{- $secret := include "hark.profileSecretName" (list $ $name $profile) }}
{{- if $secret }}
- name: s3-{{ $name }}
  secret:
    secretName: {{ $secret }}
    defaultMode: 0440
{{- end }}
{{- end }}
{{- end }}

{{/* Labels every pod of this release's Ray cluster has (head and workers). */}}
{{- define "hark.rayPodSelectorLabels" -}}
{{ include "hark.selectorLabels" . }}
hark.dev/ray-service: {{ include "hark.rayServiceName" . }}
{{- end }}

{{/* Pod labels of one Ray node type; call with (list $ "ray-head"). */}}
{{- define "hark.rayPodLabels" -}}
{{- $root := index . 0 }}
{{ include "hark.componentSelectorLabels" . }}
app.kubernetes.io/part-of: hark
hark.dev/ray-service: {{ include "hark.rayServiceName" $root }}
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- with $root.Values.ray.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The arguments of `build_app(args)`: the deployment sizes (fields of
hark_serving.serve.settings.ServeSettings, as `hark serve` flags set them) and
`serve.args`. The deployments section of the Serve config repeats the same
numbers, so Ray Serve applies them and the operator has a field to move.
*/}}
{{- define "hark.serveArgs" -}}
{{- $s := .Values.serve }}
{{- $args := dict
  "ingress_min_replicas" (int $s.ingress.minReplicas)
  "ingress_max_replicas" (int $s.ingress.maxReplicas)
  "ingress_num_cpus" $s.ingress.numCpus
  "ingress_max_ongoing_requests" (int $s.ingress.maxOngoingRequests)
  "ingress_target_ongoing_requests" $s.ingress.targetOngoingRequests
  "worker_min_replicas" (int $s.worker.minReplicas)
  "worker_max_replicas" (int $s.worker.maxReplicas)
  "worker_num_cpus" $s.worker.numCpus
  "worker_max_ongoing_requests" (int $s.worker.maxOngoingRequests)
  "worker_target_ongoing_requests" $s.worker.targetOngoingRequests
  "transcriber_min_replicas" (int (include "hark.scaleMinReplicas" .))
  "transcriber_max_replicas" (int (include "hark.scaleMaxReplicas" .))
  "transcriber_num_cpus" $s.transcriber.numCpus
  "transcriber_num_gpus" (ternary 1 0 (gt (int .Values.ray.workers.gpusPerWorker) 0))
  "transcriber_max_ongoing_requests" (int $s.transcriber.maxOngoingRequests)
  "transcriber_target_ongoing_requests" $s.transcriber.targetOngoingRequests
}}
{{- merge $args (deepCopy ($s.args | default dict)) | toJson }}
{{- end }}

{{/*
One entry of the Serve config's deployments section, from the args; call with
(list $args "worker" "Worker"). The Transcriber gets no `initial_replicas`: it
starts at the floor (0: no GPU pod until work arrives), and Ray Serve rejects a
floor above `initial_replicas`, which would block the operator's patch.
*/}}
{{- define "hark.serveDeployment" -}}
{{- $args := index . 0 }}
{{- $key := index . 1 }}
{{- $min := index $args (printf "%s_min_replicas" $key) }}
{{- $autoscaling := dict
  "min_replicas" $min
  "max_replicas" (index $args (printf "%s_max_replicas" $key))
  "target_ongoing_requests" (index $args (printf "%s_target_ongoing_requests" $key))
}}
{{- $actor := dict "num_cpus" (index $args (printf "%s_num_cpus" $key)) }}
{{- if eq $key "transcriber" }}
{{- $_ := set $actor "num_gpus" $args.transcriber_num_gpus }}
{{- /* Serve's own 600 s would keep the last GPU pod long after the operator dropped the floor. */}}
{{- $_ := set $autoscaling "downscale_delay_s" (default 30 $args.transcriber_downscale_delay_seconds) }}
{{- else }}
{{- $_ := set $autoscaling "initial_replicas" (max 1 (int $min)) }}
{{- end }}
{{- dict
  "name" (index . 2)
  "max_ongoing_requests" (index $args (printf "%s_max_ongoing_requests" $key))
  "autoscaling_config" $autoscaling
  "ray_actor_options" $actor
  | toJson }}
{{- end }}

{{/*
The Ray Serve config (RayService serveConfigV2): the application `hark`, built
by the same `build_app(args)` that `hark serve` runs, with per-deployment
resources and autoscaling. The Transcriber's `autoscaling_config.min_replicas`
is the floor the operator moves (docs/contracts.md §8); it starts at the pool's floor.
*/}}
{{- define "hark.serveConfig" -}}
{{- $args := include "hark.serveArgs" . | fromJson }}
{{- $deployments := list
  (include "hark.serveDeployment" (list $args "ingress" "Ingress") | fromJson)
  (include "hark.serveDeployment" (list $args "worker" "Worker") | fromJson)
  (include "hark.serveDeployment" (list $args "transcriber" "Transcriber") | fromJson)
}}
{{- $app := dict
  "name" "hark"
  "route_prefix" "/"
  "import_path" "hark_serving.serve.app:build_app"
  "args" $args
  "deployments" $deployments
}}
{{- $config := dict
  "proxy_location" "EveryNode"
  "http_options" (dict "host" "0.0.0.0" "port" 8000)
  "logging_config" (dict "encoding" "JSON" "log_level" .Values.serve.logLevel)
  "applications" (list $app)
}}
{{- toYaml $config }}
{{- end }}

{{/*
Cluster-scoped names: `<namespace>-<fullname>-operator`. They are not DNS
labels (up to 253 characters), so they are not cut: two releases of one name in
different namespaces keep distinct ClusterRoles.
*/}}
{{- define "hark.clusterRoleName" -}}
{{- printf "%s-%s" .Release.Namespace (include "hark.operatorName" .) }}
{{- end }}

{{/* The rules on TranscriptionJobs and Events, shared by the Role and the ClusterRole. */}}
{{- define "hark.jobRules" -}}
# TranscriptionJobs: watch them, patch their status, add and remove finalizers,
# and delete finished ones past ttlSecondsAfterFinished (never their outputs).
- apiGroups: [hark.dev]
  resources: [transcriptionjobs]
  verbs: [get, list, watch, patch, update, delete]
- apiGroups: [hark.dev]
  resources: [transcriptionjobs/status, transcriptionjobs/finalizers]
  verbs: [get, patch, update]
# Events on the jobs (progress, failures).
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/*
A Ray container's resources with an ephemeral-storage limit: the upload spool
and spill files live on an emptyDir that counts against it, so a node's disk
is never filled by one pod. A limit given in the values wins.
Call with (list $ resources).
*/}}
{{- define "hark.withEphemeralStorage" -}}
{{- $root := index . 0 }}
{{- $resources := deepCopy (index . 1 | default dict) }}
{{- $limits := $resources.limits | default dict }}
{{- if not (hasKey $limits "ephemeral-storage") }}
{{- $_ := set $limits "ephemeral-storage" $root.Values.serve.spool.ephemeralStorageLimit }}
{{- end }}
{{- $_ := set $resources "limits" $limits }}
{{- toYaml $resources }}
{{- end }}
