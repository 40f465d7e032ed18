{{/*
Names. The fullname is the release name when it already contains "plate-policy"
(release "plate-policy" -> Service plate-policy.<ns>.svc, the name `plate-policy certs`
uses by default), otherwise "<release>-plate-policy". The alert rules expect
"plate-policy" in the Service (scrape job) and Deployment names; both are the fullname.
*/}}
{{- define "plate-policy.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "plate-policy.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "plate-policy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "plate-policy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "plate-policy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "plate-policy.labels" -}}
helm.sh/chart: {{ include "plate-policy.chart" . }}
{{ include "plate-policy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: plate-policy
{{- end -}}

{{- define "plate-policy.serviceAccountName" -}}
{{- include "plate-policy.fullname" . -}}
{{- end -}}

{{- define "plate-policy.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Name of the serving Certificate (certManager mode) and of its Secret. */}}
{{- define "plate-policy.certificateName" -}}
{{- printf "%s-tls" (include "plate-policy.fullname" .) -}}
{{- end -}}

{{/* The Secret mounted at /etc/plate-policy/tls. */}}
{{- define "plate-policy.tlsSecretName" -}}
{{- if eq .Values.tls.mode "existingSecret" -}}
{{- required "tls.existingSecret.name is required when tls.mode is existingSecret: the name of a kubernetes.io/tls Secret in the release namespace" .Values.tls.existingSecret.name -}}
{{- else -}}
{{- include "plate-policy.certificateName" . -}}
{{- end -}}
{{- end -}}

{{/*
Checks that a schema cannot express (relations between values). Included by the
Deployment, so `helm template` / `helm install` stop with the message.
*/}}
{{- define "plate-policy.validate" -}}
{{- $drain := int .Values.drainTimeoutSeconds -}}
{{- $sleep := int .Values.preStopSleepSeconds -}}
{{- $grace := int .Values.terminationGracePeriodSeconds -}}
{{- if le $grace (add $drain $sleep) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than drainTimeoutSeconds (%d) + preStopSleepSeconds (%d): otherwise the kubelet kills the server while it is still draining requests" $grace $drain $sleep) -}}
{{- end -}}
{{- if ge (int .Values.requestTimeoutMs) (mul (int .Values.webhook.timeoutSeconds) 1000) -}}
{{- fail (printf "requestTimeoutMs (%d) must be below webhook.timeoutSeconds (%d s): otherwise the API server gives up before the server's own deadline decides the request" (int .Values.requestTimeoutMs) (int .Values.webhook.timeoutSeconds)) -}}
{{- end -}}
{{- if eq .Values.tls.mode "existingSecret" -}}
{{- $_ := include "plate-policy.tlsSecretName" . -}}
{{- $_ := include "plate-policy.caBundle" . -}}
{{- end -}}
{{- end -}}

{{/* existingSecret mode: the caBundle, base64 (given as PEM or already base64). */}}
{{- define "plate-policy.caBundle" -}}
{{- $ca := .Values.tls.existingSecret.caBundle | default "" | trim -}}
{{- if not $ca -}}
{{- fail "tls.existingSecret.caBundle is required when tls.mode is existingSecret: the CA that signed the Secret's certificate (base64 of the PEM, e.g. base64 -w0 ca.crt), or the API server cannot verify the webhook" -}}
{{- end -}}
{{- if hasPrefix "-----BEGIN" $ca -}}
{{- b64enc (printf "%s\n" $ca) -}}
{{- else -}}
{{- $ca | nospace -}}
{{- end -}}
{{- end -}}

{{/*
Plural resource name of a kind, the way the API server names most resources: lowercase;
ending in s, x, ch or sh: +es; consonant + y: y -> ies; otherwise +s. "*" stays "*".
Ingress -> ingresses, NetworkPolicy -> networkpolicies, Gateway -> gateways.
*/}}
{{- define "plate-policy.plural" -}}
{{- $k := lower . -}}
{{- if eq $k "*" -}}
*
{{- else if regexMatch "(s|x|ch|sh)$" $k -}}
{{- printf "%ses" $k -}}
{{- else if regexMatch "[^aeiou]y$" $k -}}
{{- printf "%sies" (trimSuffix "y" $k) -}}
{{- else -}}
{{- printf "%ss" $k -}}
{{- end -}}
{{- end -}}

{{/*
The webhook's rules, derived from the policy set: every policy's match.kinds
(Kind = core group, group/Kind, group/STAR, STAR = every group and kind), plus
`<resource>/<subresource>` for each of its match.subresources, for its match.operations
(default CREATE, UPDATE). One rule per (apiGroup, operations), resources sorted and
deduplicated; wildcards absorb what they cover (the API server rejects STAR next to
plain resources, and STAR/sub next to x/sub). STAR is the asterisk, spelled out
because the asterisk-slash pair would end this comment.
*/}}
{{- define "plate-policy.webhookRules" -}}
{{- $buckets := dict -}}
{{- range $policy := .Values.policySet.spec.policies -}}
{{- $match := $policy.match | default dict -}}
{{- $ops := $match.operations | default (list "CREATE" "UPDATE") -}}
{{- if has "*" $ops -}}
{{- $ops = list "*" -}}
{{- end -}}
{{- $ops = $ops | uniq | sortAlpha -}}
{{- range $selector := $match.kinds -}}
{{- $group := "" -}}
{{- $kind := $selector -}}
{{- if eq $selector "*" -}}
{{- $group = "*" -}}
{{- else if contains "/" $selector -}}
{{- $group = regexReplaceAll "/[^/]*$" $selector "" -}}
{{- $kind = regexReplaceAll "^.*/" $selector "" -}}
{{- end -}}
{{- $plural := include "plate-policy.plural" $kind -}}
{{- $key := printf "%s %s" $group (join "," $ops) -}}
{{- $bucket := get $buckets $key | default (dict "group" $group "operations" $ops "resources" (list)) -}}
{{- $resources := append $bucket.resources $plural -}}
{{- range $sub := $match.subresources | default list -}}
{{- $resources = append $resources (printf "%s/%s" $plural $sub) -}}
{{- end -}}
{{- $_ := set $bucket "resources" $resources -}}
{{- $_ := set $buckets $key $bucket -}}
{{- end -}}
{{- end -}}
{{- range $key := keys $buckets | sortAlpha }}
{{- $bucket := get $buckets $key -}}
{{- $all := $bucket.resources | uniq | sortAlpha -}}
{{- $resources := list -}}
{{- if has "*/*" $all -}}
{{- $resources = list "*/*" -}}
{{- else -}}
{{- range $r := $all -}}
{{- $parts := splitList "/" $r -}}
{{- $res := first $parts -}}
{{- $sub := "" -}}
{{- if gt (len $parts) 1 -}}
{{- $sub = last $parts -}}
{{- end -}}
{{- $covered := false -}}
{{- if and (not $sub) (ne $res "*") (has "*" $all) -}}
{{- $covered = true -}}
{{- end -}}
{{- if and $sub (ne $res "*") (has (printf "*/%s" $sub) $all) -}}
{{- $covered = true -}}
{{- end -}}
{{- if and $sub (ne $sub "*") (has (printf "%s/*" $res) $all) -}}
{{- $covered = true -}}
{{- end -}}
{{- if not $covered -}}
{{- $resources = append $resources $r -}}
{{- end -}}
{{- end -}}
{{- end }}
- apiGroups: {{ list $bucket.group | toJson }}
  apiVersions: ["*"]
  operations: {{ $bucket.operations | toJson }}
  resources: {{ $resources | toJson }}
  scope: "*"
{{- end -}}
{{- end -}}

{{/*
The ClusterRole's rules: get, list, watch on Namespaces (the namespace cache) and on
every kind a policy lists under `context` (the server keeps a cache of each; without
the permission the cache never syncs and the replica never becomes ready). Nothing else.
*/}}
{{- define "plate-policy.rbacRules" -}}
{{- $groups := dict "" (list "namespaces") -}}
{{- range $policy := .Values.policySet.spec.policies -}}
{{- range $ctx := $policy.context | default list -}}
{{- $group := "" -}}
{{- if contains "/" $ctx.apiVersion -}}
{{- $group = regexReplaceAll "/[^/]*$" $ctx.apiVersion "" -}}
{{- end -}}
{{- $resources := get $groups $group | default (list) -}}
{{- $_ := set $groups $group (append $resources (include "plate-policy.plural" $ctx.kind)) -}}
{{- end -}}
{{- end -}}
{{- range $group := keys $groups | sortAlpha }}
- apiGroups: {{ list $group | toJson }}
  resources: {{ get $groups $group | uniq | sortAlpha | toJson }}
  verbs: ["get", "list", "watch"]
{{- end -}}
{{- end -}}

{{/* The audit's pods: a name of their own, so no webhook Service or PDB selects them. */}}
{{- define "plate-policy.auditSelectorLabels" -}}
app.kubernetes.io/name: {{ include "plate-policy.name" . }}-audit
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
The audit's ClusterRole rules: get, list, watch on Namespaces, on every kind an audited
policy (audit not false) names in match.kinds (group/STAR: every resource of the group;
STAR alone is not audited) and on every context kind; and the policy reports it writes.
*/}}
{{- define "plate-policy.auditRbacRules" -}}
{{- $groups := dict "" (list "namespaces") -}}
{{- range $policy := .Values.policySet.spec.policies -}}
{{- if ne (toString $policy.audit) "false" -}}
{{- $match := $policy.match | default dict -}}
{{- range $selector := $match.kinds | default list -}}
{{- if ne $selector "*" -}}
{{- $group := "" -}}
{{- $kind := $selector -}}
{{- if contains "/" $selector -}}
{{- $group = regexReplaceAll "/[^/]*$" $selector "" -}}
{{- $kind = regexReplaceAll "^.*/" $selector "" -}}
{{- end -}}
{{- $resources := get $groups $group | default (list) -}}
{{- $_ := set $groups $group (append $resources (include "plate-policy.plural" $kind)) -}}
{{- end -}}
{{- end -}}
{{- range $ctx := $policy.context | default list -}}
{{- $group := "" -}}
{{- if contains "/" $ctx.apiVersion -}}
{{- $group = regexReplaceAll "/[^/]*$" $ctx.apiVersion "" -}}
{{- end -}}
{{- $resources := get $groups $group | default (list) -}}
{{- $_ := set $groups $group (append $resources (include "plate-policy.plural" $ctx.kind)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $group := keys $groups | sortAlpha }}
{{- $resources := get $groups $group | uniq | sortAlpha -}}
{{- if has "*" $resources -}}
{{- $resources = list "*" -}}
{{- end }}
- apiGroups: {{ list $group | toJson }}
  resources: {{ $resources | toJson }}
  verbs: ["get", "list", "watch"]
{{- end }}
{{- if eq .Values.audit.reports.api "wgpolicyk8s" }}
- apiGroups: ["wgpolicyk8s.io"]
  resources: ["policyreports", "clusterpolicyreports"]
{{- else }}
- apiGroups: ["openreports.io"]
  resources: ["reports", "clusterreports"]
{{- end }}
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
{{- end -}}
