{{/*
Helpers shared by every template (including the monitoring ones). Names are cut to 63 characters,
the limit of a DNS label and of a label value.
*/}}

{{/* zai-proxy.name: the chart name, or nameOverride. */}}
{{- define "zai-proxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* zai-proxy.fullname: the object name; the release name alone when it already contains the chart name (so `zai-proxy` and `zai-proxy-canary` stay as they are). */}}
{{- define "zai-proxy.fullname" -}}
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

{{/* zai-proxy.namespace: the namespace of the release's own objects. */}}
{{- define "zai-proxy.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* zai-proxy.chart: name-version, for the helm.sh/chart label. */}}
{{- define "zai-proxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* zai-proxy.selectorLabels: small and immutable; the variant (`version`) keeps the two variants' selectors apart even if both releases shared a namespace and a name. */}}
{{- define "zai-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zai-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
version: {{ .Values.variant }}
{{- end }}

{{/* zai-proxy.labels: standard labels for every object, plus the seed's `app` (object name) and `version` (variant), which the ServiceMonitor selects and relabels into deployment_variant. */}}
{{- define "zai-proxy.labels" -}}
helm.sh/chart: {{ include "zai-proxy.chart" . }}
{{ include "zai-proxy.selectorLabels" . }}
app: {{ include "zai-proxy.fullname" . }}
app.kubernetes.io/version: {{ (include "zai-proxy.imageTag" .) | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: zai-proxy
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* zai-proxy.serviceAccountName: the account the pods run as. */}}
{{- define "zai-proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "zai-proxy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* zai-proxy.imageTag: the image tag, defaulting to the chart's appVersion. */}}
{{- define "zai-proxy.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* zai-proxy.image: repository:tag, or repository@digest when a digest is pinned. */}}
{{- define "zai-proxy.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "zai-proxy.imageTag" .) }}
{{- end }}
{{- end }}

{{/* zai-proxy.secretName: the Secret the chart renders for keys given as values. */}}
{{- define "zai-proxy.secretName" -}}
{{- include "zai-proxy.fullname" . }}
{{- end }}

{{/* zai-proxy.createSecret: "true" when any key is given inline, so the chart must render its Secret. */}}
{{- define "zai-proxy.createSecret" -}}
{{- if or .Values.zai.apiKey .Values.proxyApiKeys.keys .Values.adminToken.value -}}
true
{{- end }}
{{- end }}

{{/*
zai-proxy.seconds: a duration as the proxy reads it ("500ms", "30s", "5m", "6h" or bare seconds)
converted to seconds, so the chart can compare it with terminationGracePeriodSeconds.
*/}}
{{- define "zai-proxy.seconds" -}}
{{- $text := toString . | trim }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $text }}
{{- $unit := trimPrefix $number $text | trim }}
{{- $factor := get (dict "ms" 0.001 "s" 1.0 "" 1.0 "m" 60.0 "h" 3600.0) $unit }}
{{- mulf (float64 $number) $factor }}
{{- end }}

{{/* zai-proxy.validate: impossible value combinations stop the render with a message naming the keys. */}}
{{- define "zai-proxy.validate" -}}
{{- $v := .Values }}
{{- if and (not $v.zai.apiKey) (not $v.zai.existingSecret) }}
{{- fail "zai.apiKey or zai.existingSecret must be set: the proxy cannot start without a Z.AI API key" }}
{{- end }}
{{- if and $v.zai.apiKey $v.zai.existingSecret }}
{{- fail "zai.apiKey and zai.existingSecret are mutually exclusive: set only one" }}
{{- end }}
{{- if and $v.proxyApiKeys.keys $v.proxyApiKeys.existingSecret }}
{{- fail "proxyApiKeys.keys and proxyApiKeys.existingSecret are mutually exclusive: set only one" }}
{{- end }}
{{- if and $v.adminToken.value $v.adminToken.existingSecret }}
{{- fail "adminToken.value and adminToken.existingSecret are mutually exclusive: set only one" }}
{{- end }}
{{- if lt (int $v.config.maxWorkers) (int $v.config.webConcurrency) }}
{{- fail (printf "config.maxWorkers (%d) must be at least config.webConcurrency (%d): the in-flight cap is split between worker processes" (int $v.config.maxWorkers) (int $v.config.webConcurrency)) }}
{{- end }}
{{- $rl := $v.rateLimit }}
{{- if $rl.enabled }}
{{- if not (and (le (float64 $rl.min) (float64 $rl.initial)) (le (float64 $rl.initial) (float64 $rl.max))) }}
{{- fail "rateLimit.initial must lie between rateLimit.min and rateLimit.max" }}
{{- end }}
{{- if and (not $rl.existingSecret) (hasPrefix "memory://" $rl.storageUri) }}
{{- if or $v.autoscaling.enabled (gt (int $v.replicaCount) 1) (gt (int $v.config.webConcurrency) 1) }}
{{- fail (printf "rateLimit.storageUri is memory:// while replicaCount=%d, autoscaling.enabled=%t, config.webConcurrency=%d: every pod and worker process would admit the whole Z.AI budget on its own. Set rateLimit.storageUri (redis://…) or rateLimit.existingSecret so they share it, or run one replica with one worker, or set rateLimit.enabled=false" (int $v.replicaCount) $v.autoscaling.enabled (int $v.config.webConcurrency)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $rl.storageUri $rl.existingSecret (ne $rl.storageUri "memory://") }}
{{- fail "rateLimit.storageUri and rateLimit.existingSecret are mutually exclusive: set only one" }}
{{- end }}
{{- if regexMatch "^[a-z+]+://[^/]*@" $rl.storageUri }}
{{- fail "rateLimit.storageUri carries credentials, which would land in the pod spec: put the URI in a Secret and set rateLimit.existingSecret" }}
{{- end }}
{{- if and $v.config.quota.enforcementEnabled (not $v.config.quota.pollEnabled) }}
{{- fail "config.quota.enforcementEnabled needs config.quota.pollEnabled: enforcement acts on the polled quota" }}
{{- end }}
{{- $graceful := include "zai-proxy.seconds" $v.config.gracefulTimeout | float64 }}
{{- $preStop := float64 (default 0 $v.preStopSleepSeconds) }}
{{- if le (float64 $v.terminationGracePeriodSeconds) (addf $graceful $preStop) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be longer than config.gracefulTimeout (%s) plus preStopSleepSeconds (%v): the kubelet would kill streams still draining" $v.terminationGracePeriodSeconds $v.config.gracefulTimeout $v.preStopSleepSeconds) }}
{{- end }}
{{- if $v.autoscaling.enabled }}
{{- if gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- end }}
{{- if and $v.podDisruptionBudget.enabled (not (kindIs "invalid" $v.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" $v.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget.minAvailable and podDisruptionBudget.maxUnavailable are mutually exclusive: set the other to null" }}
{{- end }}
{{- end }}

{{/* zai-proxy.testSelectorLabels: labels of the helm test pod; deliberately not matching the Service selector, so it never receives traffic. */}}
{{- define "zai-proxy.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "zai-proxy.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/component: test
{{- end }}
