{{/* Chart name, overridable with nameOverride. */}}
{{- define "musicgen.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name, truncated to 63 characters (DNS label limit). */}}
{{- define "musicgen.fullname" -}}
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

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "musicgen.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release namespace. */}}
{{- define "musicgen.namespace" -}}
{{- .Release.Namespace }}
{{- end }}

{{/* Common labels (never used as selectors: helm.sh/chart changes on upgrade). */}}
{{- define "musicgen.labels" -}}
helm.sh/chart: {{ include "musicgen.chart" . }}
{{ include "musicgen.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: musicgen-ops
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: stable across upgrades. */}}
{{- define "musicgen.selectorLabels" -}}
app.kubernetes.io/name: {{ include "musicgen.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "musicgen.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "musicgen.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The ServiceAccount of training/generation Jobs. */}}
{{- define "musicgen.jobServiceAccountName" -}}
{{- default (include "musicgen.componentName" (list . "job")) .Values.jobs.serviceAccount.name }}
{{- end }}

{{/* "repository:tag" of one of the three images; call with (dict "image" .Values.images.x "root" $). */}}
{{- define "musicgen.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* Name of the storage Secret (existing or chart-created). */}}
{{- define "musicgen.storageSecretName" -}}
{{- default (include "musicgen.componentName" (list . "storage")) .Values.storage.existingSecret }}
{{- end }}

{{/* Name of the bundled MinIO's resources. */}}
{{- define "musicgen.minioName" -}}
{{- include "musicgen.componentName" (list . "minio") }}
{{- end }}

{{/* In-cluster S3 endpoint of the bundled MinIO. */}}
{{- define "musicgen.minioEndpoint" -}}
{{- printf "http://%s.%s.svc:%d" (include "musicgen.minioName" .) .Release.Namespace (int .Values.minio.service.port) }}
{{- end }}

{{/* Namespaces that need the storage Secret and the Jobs' ServiceAccount: the release's plus the watched ones. */}}
{{- define "musicgen.jobNamespaces" -}}
{{- $namespaces := list .Release.Namespace }}
{{- range .Values.operator.watchNamespaces }}
{{- $namespaces = append $namespaces . }}
{{- end }}
{{- $namespaces | uniq | toJson }}
{{- end }}

{{/* "<fullname>-<suffix>" kept within 63 characters; call with (list $ "suffix"). */}}
{{- define "musicgen.componentName" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- $prefix := include "musicgen.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $prefix $suffix }}
{{- end }}
