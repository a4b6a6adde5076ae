{{/*
Helpers of the dashboard service (templates dashboard-*.yaml) and of the headless Service it
scrapes (service-headless.yaml). The dashboard's pods carry their own `app.kubernetes.io/name`
(`<name>-dashboard`) and no `version` label, so neither the proxy's Service nor its
ServiceMonitor ever selects them.
*/}}

{{/* zai-proxy.headlessName: `<fullname>-headless`, within 63 characters. */}}
{{- define "zai-proxy.headlessName" -}}
{{- printf "%s-headless" (include "zai-proxy.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{/* zai-proxy.dashboard.fullname: `<fullname>-dashboard`, within 63 characters. */}}
{{- define "zai-proxy.dashboard.fullname" -}}
{{- printf "%s-dashboard" (include "zai-proxy.fullname" . | trunc 53 | trimSuffix "-") }}
{{- end }}

{{/* zai-proxy.dashboard.selectorLabels: the dashboard pods' immutable selector. */}}
{{- define "zai-proxy.dashboard.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-dashboard" (include "zai-proxy.name" . | trunc 53 | trimSuffix "-") }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/component: dashboard
{{- end }}

{{/* zai-proxy.dashboard.labels: standard labels of the dashboard's objects. */}}
{{- define "zai-proxy.dashboard.labels" -}}
helm.sh/chart: {{ include "zai-proxy.chart" . }}
{{ include "zai-proxy.dashboard.selectorLabels" . }}
app: {{ include "zai-proxy.dashboard.fullname" . }}
app.kubernetes.io/version: {{ (include "zai-proxy.imageTag" .) | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: zai-proxy
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
zai-proxy.dashboard.variants: the variants the dashboard shows, production first, as a list:
this release's variant and `dashboard.otherRelease.variant`, or the keys of `dashboard.targets`.
*/}}
{{- define "zai-proxy.dashboard.variants" -}}
{{- $d := .Values.dashboard }}
{{- $names := list }}
{{- if $d.targets }}
{{- $names = keys $d.targets | sortAlpha }}
{{- else }}
{{- $names = list .Values.variant $d.otherRelease.variant | uniq }}
{{- end }}
{{- if has "production" $names }}
{{- $names = prepend (without $names "production") "production" }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/*
zai-proxy.dashboard.targets: DASHBOARD_TARGETS. By default every pod of both releases through
their headless Services (`dns+http://<release>-headless.<namespace>.svc.<clusterDomain>`),
re-resolved by the dashboard every tick.
*/}}
{{- define "zai-proxy.dashboard.targets" -}}
{{- $d := .Values.dashboard }}
{{- $entries := list }}
{{- range $variant := include "zai-proxy.dashboard.variants" . | fromJsonArray }}
{{- $urls := list }}
{{- if $d.targets }}
{{- $urls = index $d.targets $variant }}
{{- else if eq $variant $.Values.variant }}
{{- $urls = list (printf "dns+http://%s.%s.svc.%s:%v/metrics" (include "zai-proxy.headlessName" $) (include "zai-proxy.namespace" $) $d.clusterDomain $.Values.config.port) }}
{{- else }}
{{- $other := $d.otherRelease }}
{{- $urls = list (printf "dns+http://%s-headless.%s.svc.%s:%v/metrics" ($other.fullname | trunc 54 | trimSuffix "-") $other.namespace $d.clusterDomain $other.port) }}
{{- end }}
{{- $entries = append $entries (printf "%s=%s" $variant (join "," $urls)) }}
{{- end }}
{{- join ";" $entries }}
{{- end }}

{{/* zai-proxy.dashboard.validate: impossible dashboard values stop the render, naming the keys. */}}
{{- define "zai-proxy.dashboard.validate" -}}
{{- $d := .Values.dashboard }}
{{- if and (not $d.targets) (not $d.prometheusUrl) (eq $d.otherRelease.variant .Values.variant) }}
{{- fail (printf "dashboard.otherRelease.variant (%s) must differ from this release's variant: the dashboard compares the two" .Values.variant) }}
{{- end }}
{{- if and $d.targets $d.prometheusUrl }}
{{- fail "dashboard.targets and dashboard.prometheusUrl are mutually exclusive: the dashboard scrapes the pods or reads Prometheus" }}
{{- end }}
{{- range $variant, $urls := $d.targets }}
{{- range $urls }}
{{- if regexMatch "^(dns\\+)?https?://[^/]*@" . }}
{{- fail (printf "dashboard.targets.%s has credentials in a URL, which would land in the pod spec" $variant) }}
{{- end }}
{{- end }}
{{- end }}
{{- $interval := include "zai-proxy.seconds" $d.scrapeInterval | float64 }}
{{- if gt (include "zai-proxy.seconds" $d.scrapeTimeout | float64) $interval }}
{{- fail (printf "dashboard.scrapeTimeout (%s) must not be longer than dashboard.scrapeInterval (%s)" $d.scrapeTimeout $d.scrapeInterval) }}
{{- end }}
{{- end }}
