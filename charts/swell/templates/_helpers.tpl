{{/* The chart name, for app.kubernetes.io/name. */}}
{{- define "swell.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The operator's name: the Deployment's, and the prefix of every other object the chart
creates. `<release>-operator` (so `keda-operator` for a release called `keda`, as KEDA
names it), unless operator.name is set. Cluster-scoped objects carry it too, so two releases
never share a ClusterRole.
*/}}
{{- define "swell.operatorName" -}}
{{- default (printf "%s-operator" .Release.Name) .Values.operator.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "swell.metricsApiServiceName" -}}
{{- printf "%s-metrics-apiserver" (include "swell.operatorName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "swell.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- required "serviceAccount.name is required" .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "swell.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "swell.selectorLabels" -}}
app.kubernetes.io/name: {{ include "swell.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "swell.labels" -}}
{{ include "swell.selectorLabels" . }}
app.kubernetes.io/part-of: swell
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* The port of a `host:port` bind address (`0.0.0.0:8080`, `[::]:8080`). */}}
{{- define "swell.port" -}}
{{- $port := regexFind "[0-9]+$" . -}}
{{- if not $port -}}
{{- fail (printf "bind address %q has no port" .) -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{- define "swell.webhookServiceName" -}}
{{- printf "%s-webhook" (include "swell.operatorName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The ValidatingWebhookConfiguration (cluster-scoped, so named after the operator). */}}
{{- define "swell.webhookConfigurationName" -}}
{{- printf "%s-admission" (include "swell.operatorName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
