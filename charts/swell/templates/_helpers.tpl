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

{{/*
The one ServiceAccount: KEDA's `serviceAccount.operator.*` field by field, else the flat
`serviceAccount.*` (as KEDA reads both). JSON: create, name, automount, annotations.
*/}}
{{- define "swell.serviceAccount" -}}
{{- $flat := .Values.serviceAccount -}}
{{- $op := $flat.operator | default dict -}}
{{- $create := ternary $op.create $flat.create (hasKey $op "create") -}}
{{- $automount := ternary $op.automountServiceAccountToken $flat.automountServiceAccountToken (hasKey $op "automountServiceAccountToken") -}}
{{- $irsa := dict -}}
{{- with .Values.podIdentity.aws.irsa -}}
{{- if .enabled -}}
{{- with .audience }}{{ $_ := set $irsa "eks.amazonaws.com/audience" (toString .) }}{{ end -}}
{{- with .roleArn }}{{ $_ := set $irsa "eks.amazonaws.com/role-arn" (toString .) }}{{ end -}}
{{- with .stsRegionalEndpoints }}{{ $_ := set $irsa "eks.amazonaws.com/sts-regional-endpoints" (toString .) }}{{ end -}}
{{- $_ := set $irsa "eks.amazonaws.com/token-expiration" (toString .tokenExpiration) -}}
{{- end -}}
{{- end -}}
{{- $annotations := include "swell.keda.union" (dict "maps" (list $flat.annotations $op.annotations $irsa) "what" "serviceAccount annotations (serviceAccount.annotations, serviceAccount.operator.annotations, podIdentity.aws.irsa)") | fromJson -}}
{{- $name := $op.name | default $flat.name -}}
{{- if $create -}}
{{- $name = required "serviceAccount.name (or serviceAccount.operator.name) is required" $name -}}
{{- else -}}
{{- $name = $name | default "default" -}}
{{- end -}}
{{- toJson (dict "create" $create "name" $name "automount" $automount "annotations" $annotations) -}}
{{- end -}}

{{- define "swell.serviceAccountName" -}}
{{- (include "swell.serviceAccount" . | fromJson).name -}}
{{- end -}}

{{/* `<global.image.registry>/<image.repository>:<tag>`. */}}
{{- define "swell.image" -}}
{{- $repo := .Values.image.repository -}}
{{- with (.Values.global).image -}}
{{- with .registry }}{{ $repo = printf "%s/%s" . $repo }}{{ end -}}
{{- end -}}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* KEDA's `webhooks.enabled` when given, else Swell's `webhook.enabled`. */}}
{{- define "swell.webhookEnabled" -}}
{{- $k := .Values.webhooks | default dict -}}
{{- if ternary $k.enabled .Values.webhook.enabled (hasKey $k "enabled") }}true{{ end -}}
{{- end -}}

{{/* The webhook's failurePolicy / timeoutSeconds, KEDA's key first. Argument: dict root, key. */}}
{{- define "swell.webhookSetting" -}}
{{- $k := .root.Values.webhooks | default dict -}}
{{- ternary (get $k .key) (get .root.Values.webhook .key) (hasKey $k .key) -}}
{{- end -}}

{{/* KEDA's `metricsServer.enabled` when given, else Swell's `metricsApi.enabled`. */}}
{{- define "swell.metricsApiEnabled" -}}
{{- $k := .Values.metricsServer | default dict -}}
{{- if ternary $k.enabled .Values.metricsApi.enabled (hasKey $k "enabled") }}true{{ end -}}
{{- end -}}

{{/* The metrics API's bind address: KEDA's service.portHttpsTarget sets its port. */}}
{{- define "swell.metricsApiBindAddress" -}}
{{- $s := .Values.service | default dict -}}
{{- if hasKey $s "portHttpsTarget" -}}
{{- printf "0.0.0.0:%v" $s.portHttpsTarget -}}
{{- else -}}
{{- .Values.metricsApi.bindAddress -}}
{{- end -}}
{{- end -}}

{{/* The metrics port's bind address: KEDA's prometheus.operator.port sets its port. */}}
{{- define "swell.metricsBindAddress" -}}
{{- $p := ((.Values.prometheus).operator).port -}}
{{- $own := include "swell.port" .Values.metrics.bindAddress -}}
{{- if and $p (ne (toString $p) $own) -}}
{{- printf "%s%v" (trimSuffix $own .Values.metrics.bindAddress) $p -}}
{{- else -}}
{{- .Values.metrics.bindAddress -}}
{{- end -}}
{{- end -}}

{{- define "swell.metricsScheme" -}}
{{- if .Values.metrics.tls.enabled }}HTTPS{{ else }}HTTP{{ end -}}
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
app.kubernetes.io/managed-by: {{ .Values.customManagedBy | default .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.additionalLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
`labels:` and, when any, `annotations:` of an object's metadata: the chart's labels and
KEDA's additionalAnnotations unioned with the object's own. Arguments: root, annotations,
labels (extra labels).
*/}}
{{- define "swell.metadata" -}}
labels:
  {{- include "swell.labels" .root | nindent 2 }}
  {{- with .labels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- $a := include "swell.keda.union" (dict "maps" (list .root.Values.additionalAnnotations .annotations) "what" "annotations (additionalAnnotations and the object's own)") | fromJson }}
{{- with $a }}
annotations:
  {{- include "swell.stringMap" . | nindent 2 }}
{{- end }}
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

{{/* Secrets readable only in one namespace: Swell's value or KEDA's permissions.*.restrict.secret. */}}
{{- define "swell.restrictSecrets" -}}
{{- $p := .Values.permissions | default dict -}}
{{- if or .Values.rbac.restrictSecretAccess ((($p.operator).restrict).secret) ((($p.metricServer).restrict).secret) }}true{{ end -}}
{{- end -}}

{{/* The leader-election Lease: KEDA's operator.leaderElectionID, else operator.leaderElection.id. */}}
{{- define "swell.leaseId" -}}
{{- .Values.operator.leaderElectionID | default .Values.operator.leaderElection.id -}}
{{- end -}}

{{/* The metrics API Service's port: KEDA's service.portHttps, else metricsApi.service.port. */}}
{{- define "swell.metricsApiServicePort" -}}
{{- (.Values.service | default dict).portHttps | default .Values.metricsApi.service.port -}}
{{- end -}}

{{/* `--log-level`: KEDA's logging.operator.level (debug, info, error) when set. */}}
{{- define "swell.logLevel" -}}
{{- $k := ((.Values.logging).operator | default dict) -}}
{{- if hasKey $k "level" -}}
{{- $l := toString $k.level -}}
{{- if not (has $l (list "debug" "info" "warn" "error")) -}}
{{- fail (printf "KEDA value logging.operator.level=%s cannot apply to Swell: it takes debug, info, warn or error (zap's numeric verbosity has no counterpart); use debug, or logging.level for a filter such as info,swell_controller=debug." $l) -}}
{{- end -}}
{{- $l -}}
{{- else -}}
{{- .Values.logging.level -}}
{{- end -}}
{{- end -}}

{{/* `--log-format`: KEDA's logging.operator.format (console is text) when set. */}}
{{- define "swell.logFormat" -}}
{{- $k := ((.Values.logging).operator | default dict) -}}
{{- if hasKey $k "format" -}}
{{- $f := toString $k.format -}}
{{- if eq $f "console" }}text{{ else if eq $f "json" }}json{{ else -}}
{{- fail (printf "KEDA value logging.operator.format=%s cannot apply to Swell: it takes console (Swell's text) or json." $f) -}}
{{- end -}}
{{- else -}}
{{- .Values.logging.format -}}
{{- end -}}
{{- end -}}

{{/* The priority class: a string, or KEDA's per-component map (its `operator`). */}}
{{- define "swell.priorityClassName" -}}
{{- $p := .Values.priorityClassName -}}
{{- if kindIs "map" $p }}{{ $p.operator | default "" }}{{ else }}{{ $p | default "" }}{{ end -}}
{{- end -}}

{{/* The operator container's environment (KEDA's env names where KEDA has them). */}}
{{- define "swell.env" -}}
{{- $http := .Values.http | default dict -}}
# The Lease lives in the pod's namespace, and each replica's identity in it is the pod's name.
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: SWELL_MIN_TLS_VERSION
  value: {{ (.Values.service | default dict).minTlsVersion | default .Values.tls.minVersion | quote }}
- name: KEDA_SCALEDOBJECT_CTRL_MAX_RECONCILES
  value: {{ .Values.operator.maxReconciles | quote }}
- name: KEDA_SCALEDJOB_CTRL_MAX_RECONCILES
  value: {{ .Values.operator.maxScaledJobReconciles | default 1 | quote }}
{{- with (.Values.aws | default dict).apiRateLimit }}
- name: SWELL_AWS_API_QPS
  value: {{ .qps | default 20 | quote }}
- name: SWELL_AWS_API_BURST
  value: {{ .burst | default 40 | quote }}
{{- end }}
- name: SWELL_AWS_SECRET_REFRESH_SECONDS
  value: {{ (.Values.aws | default dict).secretRefreshSeconds | default 60 | quote }}
{{- with (.Values.aws | default dict).eksClusterName }}
- name: SWELL_EKS_CLUSTER_NAME
  value: {{ . | quote }}
{{- end }}
{{- with (.Values.aws | default dict).eksRegion }}
- name: SWELL_EKS_REGION
  value: {{ . | quote }}
{{- end }}
{{- with .Values.watchNamespace }}
- name: WATCH_NAMESPACE
  value: {{ . | quote }}
{{- end }}
{{- with .Values.watchLabelSelector }}
- name: WATCH_LABEL_SELECTOR
  value: {{ . | quote }}
{{- end }}
{{- with .Values.watchLabelSelectorForTriggerauth }}
- name: WATCH_LABEL_SELECTOR_FOR_TRIGGERAUTH
  value: {{ . | quote }}
{{- end }}
{{- with .Values.clusterObjectNamespace }}
- name: KEDA_CLUSTER_OBJECT_NAMESPACE
  value: {{ . | quote }}
{{- end }}
{{- if include "swell.restrictSecrets" . }}
# Secrets (and ConfigMaps) are watched for rotation where they may be read.
- name: SWELL_CREDENTIALS_NAMESPACE
  value: {{ default .Release.Namespace .Values.clusterObjectNamespace | quote }}
{{- end }}
{{- $userEnv := list -}}
{{- range .Values.env }}{{ $userEnv = append $userEnv .name }}{{ end }}
{{- if not (has "KEDA_OPERATOR_LEADER_ELECTION_LEASE_DURATION" $userEnv) }}
# operator.leaderElection.leaseDuration, unless env sets KEDA's variable itself.
- name: KEDA_OPERATOR_LEADER_ELECTION_LEASE_DURATION
  value: {{ printf "%vs" .Values.operator.leaderElection.leaseDuration | quote }}
{{- end }}
- name: KEDA_HTTP_DEFAULT_TIMEOUT
  value: {{ $http.timeout | default 3000 | quote }}
- name: KEDA_HTTP_MIN_TLS_VERSION
  value: {{ $http.minTlsVersion | default "TLS12" | quote }}
{{- if eq (toString (($http.keepAlive | default dict).enabled)) "false" }}
- name: KEDA_HTTP_DISABLE_KEEP_ALIVE
  value: "true"
{{- end }}
{{- with ((.Values.opentelemetry).collector).uri }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* A map's YAML with every value a string (labels and annotations take only strings). */}}
{{- define "swell.stringMap" -}}
{{- $out := dict -}}
{{- range $k, $v := . }}{{ $_ := set $out $k (toString $v) }}{{ end -}}
{{- toYaml $out -}}
{{- end -}}
