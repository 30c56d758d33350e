{{/* The release's resource name prefix. */}}
{{- define "roost.fullname" -}}
{{- if contains "roost" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-roost" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "roost.labels" -}}
app.kubernetes.io/name: roost
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "root" $ "component" "gateway"). */}}
{{- define "roost.selector" -}}
app.kubernetes.io/name: roost
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "roost.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "roost.secretName" -}}
{{ include "roost.fullname" . }}-secrets
{{- end -}}

{{- define "roost.postgresSecret" -}}
{{ .Values.postgres.existingSecret | default (include "roost.secretName" .) }}
{{- end -}}

{{- define "roost.clickhouseSecret" -}}
{{ .Values.clickhouse.existingSecret | default (include "roost.secretName" .) }}
{{- end -}}

{{- define "roost.natsUrl" -}}
{{- if .Values.nats.bundled.enabled -}}
nats://{{ include "roost.fullname" . }}-nats:4222
{{- else -}}
{{ .Values.nats.url }}
{{- end -}}
{{- end -}}

{{- define "roost.operatorServiceAccount" -}}
{{ .Values.operator.serviceAccount.name | default (printf "%s-operator" (include "roost.fullname" .)) }}
{{- end -}}

{{/* Spreads a component's pods over nodes; call with (dict "root" $ "component" "gateway"). */}}
{{- define "roost.affinity" -}}
podAntiAffinity:
{{- if eq .root.Values.antiAffinity "hard" }}
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "roost.selector" . | nindent 10 }}
{{- else }}
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "roost.selector" . | nindent 12 }}
{{- end }}
{{- end -}}

{{/* The variables every Roost process reads: the ConfigMap, then the Secrets. */}}
{{- define "roost.env" -}}
- name: ROOST_POSTGRES_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "roost.postgresSecret" . }}
      key: url
- name: ROOST_CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "roost.clickhouseSecret" . }}
      key: password
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end -}}
