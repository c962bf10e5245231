{{/*
Chart name, truncated to the 63 characters of a DNS-1123 label.
*/}}
{{- define "identity-settings-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart name>, or the release name when it already contains the chart name.
*/}}
{{- define "identity-settings-operator.fullname" -}}
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
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "identity-settings-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels.
*/}}
{{- define "identity-settings-operator.labels" -}}
helm.sh/chart: {{ include "identity-settings-operator.chart" . }}
{{ include "identity-settings-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels (must not change between upgrades).
*/}}
{{- define "identity-settings-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "identity-settings-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the ServiceAccount the operator runs as.
*/}}
{{- define "identity-settings-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "identity-settings-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository@digest when a digest is set, otherwise repository:tag (tag
defaulting to the chart's appVersion).
*/}}
{{- define "identity-settings-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
"true" when leader election is on: asked for, or more than one replica.
*/}}
{{- define "identity-settings-operator.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ else }}false{{ end }}
{{- end }}

{{/*
The RBAC rules, from files/rbac-rules.yaml (the one source of the operator's permissions).
Call with the key: (include "identity-settings-operator.rbacRules" (list . "watched")).
*/}}
{{- define "identity-settings-operator.rbacRules" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $all := $root.Files.Get "files/rbac-rules.yaml" | fromYaml }}
{{- if hasKey $all "Error" }}
{{- fail (printf "files/rbac-rules.yaml does not parse: %s" $all.Error) }}
{{- end }}
{{- $rules := get $all $key }}
{{- if not $rules }}
{{- fail (printf "files/rbac-rules.yaml has no rules under %q" $key) }}
{{- end }}
{{- toYaml $rules }}
{{- end }}

{{/*
A duration such as 30s, 5m or 1h, in seconds.
*/}}
{{- define "identity-settings-operator.seconds" -}}
{{- $n := regexFind "^[0-9]+" (toString .) | atoi }}
{{- $unit := regexFind "[smh]$" (toString .) }}
{{- if eq $unit "h" }}{{ mul $n 3600 }}{{ else if eq $unit "m" }}{{ mul $n 60 }}{{ else }}{{ $n }}{{ end }}
{{- end }}

{{/*
Checks across values that values.schema.json cannot express.
*/}}
{{- define "identity-settings-operator.validate" -}}
{{- if and .Values.rbac.create (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "serviceAccount.name must name the existing ServiceAccount the operator runs as when serviceAccount.create is false (otherwise the chart would grant its RBAC to the namespace's default ServiceAccount)" }}
{{- end }}
{{- $lease := include "identity-settings-operator.seconds" .Values.leaderElection.leaseDuration | atoi }}
{{- $renew := include "identity-settings-operator.seconds" .Values.leaderElection.renewInterval | atoi }}
{{- if or (lt $renew 1) (gt (mul $renew 2) $lease) }}
{{- fail (printf "leaderElection.renewInterval (%s) must be at least 1s and at most half of leaderElection.leaseDuration (%s)" .Values.leaderElection.renewInterval .Values.leaderElection.leaseDuration) }}
{{- end }}
{{- $min := include "identity-settings-operator.seconds" .Values.backoff.min | atoi }}
{{- $max := include "identity-settings-operator.seconds" .Values.backoff.max | atoi }}
{{- if gt $min $max }}
{{- fail (printf "backoff.min (%s) must not be longer than backoff.max (%s)" .Values.backoff.min .Values.backoff.max) }}
{{- end }}
{{- with .Values.metrics.serviceMonitor }}
{{- if .enabled }}
{{- if not $.Values.metrics.service.enabled }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled" }}
{{- end }}
{{- if gt (include "identity-settings-operator.seconds" .scrapeTimeout | atoi) (include "identity-settings-operator.seconds" .interval | atoi) }}
{{- fail (printf "metrics.serviceMonitor.scrapeTimeout (%s) must not be longer than metrics.serviceMonitor.interval (%s)" .scrapeTimeout .interval) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
