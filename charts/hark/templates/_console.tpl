{{/*
The web console's jobs view (`console.jobs`): the namespaces it lists, comma
separated; `console.jobs.namespaces`, else the operator's watch namespaces;
empty means the whole cluster.
*/}}
{{- define "hark.consoleJobsNamespaces" -}}
{{- $ns := .Values.console.jobs.namespaces | default .Values.operator.watchNamespaces | default list }}
{{- $ns | uniq | join "," }}
{{- end }}

{{/* The head pod's own ServiceAccount, made only for the jobs view. */}}
{{- define "hark.rayHeadServiceAccountName" -}}
{{- include "hark.componentName" (list . "ray-head") }}
{{- end }}

{{/* Who reads TranscriptionJobs for the console: the Ray pods that may run an Ingress. */}}
{{- define "hark.consoleJobsSubjects" -}}
- kind: ServiceAccount
  name: {{ include "hark.rayHeadServiceAccountName" . }}
  namespace: {{ .Release.Namespace }}
- kind: ServiceAccount
  name: {{ include "hark.rayServiceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/* Read-only: the console lists jobs and their status, nothing else. */}}
{{- define "hark.consoleJobsRules" -}}
- apiGroups: [hark.dev]
  resources: [transcriptionjobs]
  verbs: [get, list, watch]
{{- end }}
