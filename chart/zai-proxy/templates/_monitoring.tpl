{{/*
Helpers of the monitoring templates (servicemonitor.yaml, prometheusrule.yaml,
grafana-dashboard-configmap.yaml). The generic helpers live in _helpers.tpl.
*/}}

{{/* zai-proxy.monitoringName: `<fullname>-<variant>` (`zai-proxy-production`, `zai-proxy-canary`), or the fullname when it already ends with the variant. Monitoring objects of both releases share one namespace, so the variant keeps their names apart. Cut to 56 so a `-alerts` suffix still fits in 63. */}}
{{- define "zai-proxy.monitoringName" -}}
{{- $full := include "zai-proxy.fullname" . }}
{{- if hasSuffix (printf "-%s" .Values.variant) $full }}
{{- $full | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" $full .Values.variant | trunc 56 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* zai-proxy.monitoringNamespace: the namespace given in values, or the release namespace when empty. Call with (dict "namespace" <value> "context" $). */}}
{{- define "zai-proxy.monitoringNamespace" -}}
{{- default (include "zai-proxy.namespace" .context) .namespace }}
{{- end }}

{{/* zai-proxy.tokenMetricsRegex: matches the metric families that exist only with token counting on; an alert expression or a dashboard panel that reads one is a token alert/panel. */}}
{{- define "zai-proxy.tokenMetricsRegex" -}}
zai_proxy_(estimated_)?(token|cost)
{{- end }}

{{/* zai-proxy.canaryOnlyRow: title of the dashboard row whose panels (token throughput, token counting duration, rate-limit adjustments) are shown only with the token panels (grafanaDashboard.tokenPanels). */}}
{{- define "zai-proxy.canaryOnlyRow" -}}
Canary only
{{- end }}
