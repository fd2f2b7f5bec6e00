{{/*
KEDA values compatibility (docs/keda-values.md). Swell runs KEDA's operator, metrics server
and admission webhooks as one Deployment, so each KEDA key is:
- same: read where KEDA reads it, with KEDA's meaning;
- mapped: a per-component key folded into the one Deployment (rule: the operator's value
  applies; a metricsServer/webhooks value must be KEDA's default or equal to the operator's;
  maps such as pod annotations, labels and extra volumes are unioned);
- refused: `helm install` fails naming the key, but only when it differs from KEDA's default,
  so KEDA's own values.yaml installs unchanged.
KEDA 2.20.2's defaults are files/keda-values.yaml, verbatim.
*/}}

{{/* KEDA's default values, parsed. */}}
{{- define "swell.keda.defaults" -}}
{{- .Files.Get "files/keda-values.yaml" | fromYaml | toJson -}}
{{- end -}}

{{/*
JSON of the value at dotted `path` in `from` (a map), or `null` when any step is missing.
*/}}
{{- define "swell.keda.at" -}}
{{- $v := .from -}}
{{- $found := true -}}
{{- range splitList "." .path -}}
{{- if and $found (kindIs "map" $v) (hasKey $v .) -}}
{{- $v = index $v . -}}
{{- else -}}
{{- $found = false -}}
{{- end -}}
{{- end -}}
{{- if $found }}{{ toJson $v }}{{ else }}null{{ end -}}
{{- end -}}

{{/*
True ("true") when the user's value at `path` is set and differs from KEDA's default.
Arguments: root (the chart's `.`), defaults (parsed KEDA defaults), path.
*/}}
{{- define "swell.keda.changed" -}}
{{- $user := include "swell.keda.at" (dict "from" .root.Values "path" .path) -}}
{{- $default := include "swell.keda.at" (dict "from" .defaults "path" .path) -}}
{{- if and (ne $user "null") (ne $user $default) }}true{{ end -}}
{{- end -}}

{{/*
`path.to.leaf=<JSON>`: the first leaf under `path` where the user's value differs from
KEDA's default, so a message names the key the user set. Arguments: user, default, path.
*/}}
{{- define "swell.keda.firstDiff" -}}
{{- $found := "" -}}
{{- if and (kindIs "map" .user) (kindIs "map" .default) -}}
{{- range $k := keys .user | sortAlpha -}}
{{- $u := get $.user $k -}}
{{- if and (not $found) (ne (toJson $u) (toJson (get $.default $k))) -}}
{{- $found = include "swell.keda.firstDiff" (dict "user" $u "default" (get $.default $k) "path" (printf "%s.%s" $.path $k)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $found | default (printf "%s=%s" .path (toJson .user)) -}}
{{- end -}}

{{/* firstDiff of the user's value at `path` (arguments: root, defaults, path). */}}
{{- define "swell.keda.changedLeaf" -}}
{{- /* Wrapped in an object: fromJson parses objects only. */ -}}
{{- $user := (printf "{\"v\":%s}" (include "swell.keda.at" (dict "from" .root.Values "path" .path)) | fromJson).v -}}
{{- $default := (printf "{\"v\":%s}" (include "swell.keda.at" (dict "from" .defaults "path" .path)) | fromJson).v -}}
{{- include "swell.keda.firstDiff" (dict "user" $user "default" $default "path" .path) -}}
{{- end -}}

{{/*
Fails the install for every refused key set to a value other than KEDA's default.
Each entry: the key, then why Swell cannot apply it and what to use instead.
*/}}
{{- define "swell.keda.refuse" -}}
{{- $defaults := include "swell.keda.defaults" . | fromJson -}}
{{- $one := "Swell runs KEDA's operator, metrics server and webhooks as one Deployment" -}}
{{- $refused := list
  (list "image.keda" "it names KEDA's image; set image.repository and image.tag to Swell's image")
  (list "image.metricsApiServer" "Swell has one image; set image.repository and image.tag")
  (list "image.webhooks" "Swell has one image; set image.repository and image.tag")
  (list "crds.install" "Swell's CRDs are in the chart's crds/ directory, which Helm installs unless told not to: remove crds.install and run helm with --skip-crds")
  (list "crds.additionalAnnotations" "Helm installs the crds/ directory verbatim, so the CRDs cannot be annotated by values; annotate them with kubectl")
  (list "networkPolicy.cilium" "Swell renders Kubernetes NetworkPolicies only; set networkPolicy.flavor=kubernetes and networkPolicy.kubernetes.*.extraEgressRules")
  (list "operator.disableCompression" "Swell's Kubernetes client never asks for compressed responses (KEDA's true)")
  (list "metricsServer.disableCompression" "Swell's Kubernetes client never asks for compressed responses (KEDA's true)")
  (list "webhooks.port" "the webhook listens on webhook.bindAddress; set webhook.bindAddress=0.0.0.0:<port>")
  (list "webhooks.healthProbePort" (printf "%s: its probes are /healthz and /readyz on the metrics port (metrics.bindAddress)" $one))
  (list "webhooks.name" "the webhook Service is <operator.name>-webhook; name it with operator.name")
  (list "rbac.enabledCustomScaledRefKinds" "Swell's ClusterRole always allows /scale of every kind (KEDA's true)")
  (list "rbac.scaledRefKinds" "Swell allows /scale of every kind; list the kinds whose pod template it must read in rbac.extraScaleTargets (apiGroups, resources)")
  (list "podIdentity.azureWorkload" "Swell does not support Azure Workload Identity yet")
  (list "podIdentity.gcp" "Swell does not support GCP Workload Identity yet")
  (list "grpcTLSCertsSecret" "Swell's external scaler does not read client certificates from /grpccerts yet")
  (list "hashiCorpVaultTLS" "Swell does not read HashiCorp Vault yet")
  (list "logging.operator.timeEncoding" "Swell's logs carry RFC 3339 timestamps (KEDA's rfc3339)")
  (list "logging.operator.stackTracesEnabled" "Swell's errors carry their causes, not Go stack traces")
  (list "logging.metricServer" (printf "%s with one log configuration: set logging.operator.level and logging.operator.format" $one))
  (list "logging.webhooks" (printf "%s with one log configuration: set logging.operator.level and logging.operator.format" $one))
  (list "service.tlsCipherList" "Swell's TLS (rustls) offers its own safe cipher suites and cannot be given a list")
  (list "http.tlsCipherList" "Swell's TLS (rustls) offers its own safe cipher suites and cannot be given a list")
  (list "http.maxIdleConns" "Swell's HTTP clients keep their own connection pools, not Go's")
  (list "http.maxIdleConnsPerHost" "Swell's HTTP clients keep their own connection pools, not Go's")
  (list "http.idleConnTimeout" "Swell's HTTP clients keep their own connection pools, not Go's")
  (list "profiling.operator" "Swell has no Go pprof endpoint to serve (it is not a Go program); profile the process with perf, or read /metrics")
  (list "profiling.metricsServer" "Swell has no Go pprof endpoint to serve (it is not a Go program)")
  (list "profiling.webhooks" "Swell has no Go pprof endpoint to serve (it is not a Go program)")
  (list "extraArgs.metricsAdapter" (printf "%s: put swell operator flags in extraArgs.keda" $one))
  (list "prometheus.metricServer.port" (printf "%s with one /metrics port: set prometheus.operator.port" $one))
  (list "prometheus.metricServer.portName" "Swell's metrics port is named metrics")
  (list "prometheus.metricServer.serviceMonitor" (printf "%s whose one /metrics has every metric: use prometheus.operator.serviceMonitor" $one))
  (list "prometheus.metricServer.podMonitor" (printf "%s whose one /metrics has every metric: use prometheus.operator.podMonitor" $one))
  (list "prometheus.webhooks.port" (printf "%s with one /metrics port: set prometheus.operator.port" $one))
  (list "prometheus.webhooks.serviceMonitor" (printf "%s whose one /metrics has every metric: use prometheus.operator.serviceMonitor" $one))
  (list "prometheus.webhooks.prometheusRules" (printf "%s: put the alerts in prometheus.operator.prometheusRules.alerts" $one))
  (list "certificates.autoGenerated" "Swell always makes its own certificates; to serve yours on the metrics API set metricsApi.certificate.secretName")
  (list "certificates.secretName" "Swell keeps the certificates it makes in memory, not in a Secret; to serve yours set metricsApi.certificate.secretName")
  (list "certificates.mountPath" "Swell mounts metricsApi.certificate.secretName at /certs")
  (list "certificates.certManager" "not implemented yet: make a cert-manager Certificate, set metricsApi.certificate.secretName to its Secret and metricsApi.apiService.annotations to cert-manager.io/inject-ca-from")
  (list "permissions.operator.restrict.namesAllowList" "not implemented yet: Swell's Role grants every Secret of a namespace")
  (list "permissions.operator.restrict.serviceAccountTokenCreationRoles" "Swell does not read boundServiceAccountToken yet")
  (list "permissions.operator.restrict.allowAllServiceAccountTokenCreation" "Swell does not read boundServiceAccountToken yet")
-}}
{{- range $refused }}
{{- if include "swell.keda.changed" (dict "root" $ "defaults" $defaults "path" (index . 0)) }}
{{- fail (printf "KEDA value %s cannot apply to Swell: %s." (include "swell.keda.changedLeaf" (dict "root" $ "defaults" $defaults "path" (index . 0))) (index . 1)) }}
{{- end }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (ne .Values.networkPolicy.flavor "kubernetes") }}
{{- fail (printf "KEDA value networkPolicy.flavor=%s cannot apply to Swell: it renders Kubernetes NetworkPolicies only; set networkPolicy.flavor=kubernetes." .Values.networkPolicy.flavor) }}
{{- end }}
{{- include "swell.keda.oneDeployment" (dict "root" . "defaults" $defaults) }}
{{- end -}}

{{/*
Per-component keys of KEDA's metrics server and webhooks Deployments: Swell's one Deployment
takes the operator's value, so another component's value must be KEDA's default or the same.
*/}}
{{- define "swell.keda.oneDeployment" -}}
{{- $pairs := list
  (list "metricsServer.replicaCount" "operator.replicaCount")
  (list "webhooks.replicaCount" "operator.replicaCount")
  (list "metricsServer.revisionHistoryLimit" "operator.revisionHistoryLimit")
  (list "webhooks.revisionHistoryLimit" "operator.revisionHistoryLimit")
  (list "metricsServer.dnsPolicy" "operator.dnsPolicy")
  (list "metricsServer.dnsConfig" "operator.dnsConfig")
  (list "webhooks.dnsConfig" "operator.dnsConfig")
  (list "metricsServer.useHostNetwork" "operator.useHostNetwork")
  (list "webhooks.useHostNetwork" "operator.useHostNetwork")
  (list "metricsServer.hostUsers" "operator.hostUsers")
  (list "webhooks.hostUsers" "operator.hostUsers")
  (list "metricsServer.affinity" "operator.affinity")
  (list "webhooks.affinity" "operator.affinity")
  (list "metricsServer.nodeSelector" "operator.nodeSelector")
  (list "webhooks.nodeSelector" "operator.nodeSelector")
  (list "metricsServer.tolerations" "operator.tolerations")
  (list "webhooks.tolerations" "operator.tolerations")
  (list "metricsServer.livenessProbe" "operator.livenessProbe")
  (list "webhooks.livenessProbe" "operator.livenessProbe")
  (list "metricsServer.readinessProbe" "operator.readinessProbe")
  (list "webhooks.readinessProbe" "operator.readinessProbe")
  (list "upgradeStrategy.metricsApiServer" "upgradeStrategy.operator")
  (list "upgradeStrategy.webhooks" "upgradeStrategy.operator")
  (list "podDisruptionBudget.metricServer" "podDisruptionBudget.operator")
  (list "podDisruptionBudget.webhooks" "podDisruptionBudget.operator")
  (list "resources.metricServer" "resources.operator")
  (list "resources.webhooks" "resources.operator")
  (list "securityContext.metricServer" "securityContext.operator")
  (list "securityContext.webhooks" "securityContext.operator")
  (list "podSecurityContext.metricServer" "podSecurityContext.operator")
  (list "podSecurityContext.webhooks" "podSecurityContext.operator")
  (list "topologySpreadConstraints.metricsServer" "topologySpreadConstraints.operator")
  (list "topologySpreadConstraints.webhooks" "topologySpreadConstraints.operator")
  (list "serviceAccount.metricServer" "serviceAccount.operator")
  (list "serviceAccount.webhooks" "serviceAccount.operator")
  (list "priorityClassName.metricServer" "priorityClassName.operator")
  (list "priorityClassName.webhooks" "priorityClassName.operator")
-}}
{{- range $pairs }}
{{- $other := index . 0 -}}
{{- $operator := index . 1 -}}
{{- if include "swell.keda.changed" (dict "root" $.root "defaults" $.defaults "path" $other) }}
{{- $got := include "swell.keda.at" (dict "from" $.root.Values "path" $other) -}}
{{- if ne $got (include "swell.keda.at" (dict "from" $.root.Values "path" $operator)) }}
{{- fail (printf "KEDA value %s cannot apply to Swell: Swell runs KEDA's operator, metrics server and webhooks as one Deployment, which takes %s (%s); set that, and leave %s at KEDA's default or equal to it." (include "swell.keda.changedLeaf" (dict "root" $.root "defaults" $.defaults "path" $other)) $operator (include "swell.keda.at" (dict "from" $.root.Values "path" $operator)) $other) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
KEDA's `X.operator` or, when that is empty, the flat `X` without KEDA's component keys (the
spelling KEDA also reads). Both at once would drop one silently, so that fails.
Arguments: value (the map), key (its name, for messages).
*/}}
{{- define "swell.keda.component" -}}
{{- $v := .value | default dict -}}
{{- $flat := omit $v "operator" "metricServer" "metricsServer" "webhooks" -}}
{{- $op := get $v "operator" | default dict -}}
{{- if and $op $flat -}}
{{- fail (printf "%s: set either %s.operator (KEDA's spelling) or its fields directly, not both (%s.operator has %s, %s has %s)." .key .key .key (toJson $op) .key (toJson $flat)) -}}
{{- end -}}
{{- toJson (ternary $op $flat (not (empty $op))) -}}
{{- end -}}

{{/*
The union of maps (JSON out); one key with two different values fails, naming `what`.
Arguments: maps (a list of maps), what.
*/}}
{{- define "swell.keda.union" -}}
{{- $out := dict -}}
{{- range .maps -}}
{{- range $k, $v := (. | default dict) -}}
{{- if and (hasKey $out $k) (ne (toJson (get $out $k)) (toJson $v)) -}}
{{- fail (printf "%s: %q is set twice with different values (%s and %s); Swell's one Deployment takes one." $.what $k (toJson (get $out $k)) (toJson $v)) -}}
{{- end -}}
{{- $_ := set $out $k $v -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
A list of objects unioned by `name` (volumes, volume mounts by mountPath…): the same entry
twice is kept once, two different entries with one name fail.
Arguments: lists, key (the field that identifies an entry), what.
*/}}
{{- define "swell.keda.unionList" -}}
{{- $seen := dict -}}
{{- $out := list -}}
{{- range .lists -}}
{{- range (. | default list) -}}
{{- $id := toString (get . $.key) -}}
{{- if hasKey $seen $id -}}
{{- if ne (toJson (get $seen $id)) (toJson .) -}}
{{- fail (printf "%s: two different entries with %s %q (%s and %s)." $.what $.key $id (toJson (get $seen $id)) (toJson .)) -}}
{{- end -}}
{{- else -}}
{{- $_ := set $seen $id . -}}
{{- $out = append $out . -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}
