{{/*
One service's NetworkPolicy, derived from calsync.topology: a gRPC service admits only the
services that call it (and, with operator.enabled, the operator's pods); the gateway admits
everyone (it is the public edge); egress is DNS, Postgres, NATS, Calendly (or the simulator) and
the gRPC services it calls.
*/}}
{{- define "calsync.networkPolicy" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $facts := include "calsync.facts" . | fromYaml }}
{{- $topology := include "calsync.topology" $root | fromYaml }}
{{- $np := $root.Values.networkPolicy }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "calsync.componentName" . }}
  labels:
    {{- include "calsync.componentLabels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "calsync.componentSelector" . | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  ingress:
    {{- if $facts.grpcPort }}
    {{- $callers := list }}
    {{- range $other := keys $topology | sortAlpha }}
    {{- $otherFacts := index $topology $other }}
    {{- if and (has $name $otherFacts.calls) (or (not $otherFacts.dev) $root.Values.dev.enabled) }}
    {{- $callers = append $callers $other }}
    {{- end }}
    {{- end }}
    {{- if or $callers $root.Values.operator.enabled }}
    - from:
        {{- range $callers }}
        - podSelector:
            matchLabels:
              {{- include "calsync.serverSelector" (dict "root" $root "name" .) | nindent 14 }}
        {{- end }}
        {{- if $root.Values.operator.enabled }}
        {{- /* The calsync CLI's pods (operator.enabled): their certificate decides what they may call. */}}
        - podSelector:
            matchLabels:
              {{- include "calsync.componentSelector" (dict "root" $root "name" "operator") | nindent 14 }}
        {{- end }}
      ports:
        - port: grpc
          protocol: TCP
    {{- end }}
    {{- with $np.metricsFrom }}
    - from:
        {{- toYaml . | nindent 8 }}
      ports:
        - port: metrics
          protocol: TCP
    {{- end }}
    {{- else }}
    {{- /* The gateway is the public edge; the simulator (dev only) is opened to browsers. */}}
    - ports:
        - port: http
          protocol: TCP
      {{- if $facts.public }}
      {{- with $np.gatewayFrom }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- end }}
    {{- end }}
  egress:
    - ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
      {{- with $np.egress.dns.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- if $facts.dev }}
    {{- /* The simulator delivers webhooks to whatever PUBLIC_BASE_URL names. */}}
    - {}
    {{- end }}
    {{- if $facts.database }}
    - ports:
        {{- range $np.egress.postgres.ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- with $np.egress.postgres.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- if $facts.nats }}
    - ports:
        {{- range $np.egress.nats.ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- if $np.egress.nats.to }}
      to:
        {{- toYaml $np.egress.nats.to | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- if and $facts.calendly $root.Values.dev.enabled }}
    - ports:
        - port: 8081
          protocol: TCP
      to:
        - podSelector:
            matchLabels:
              {{- include "calsync.serverSelector" (dict "root" $root "name" "calendly-sim") | nindent 14 }}
    {{- end }}
    {{- if or (and $facts.calendly (not $root.Values.dev.enabled)) (and $facts.public $root.Values.auth.jwksUrl) }}
    - ports:
        {{- range $np.egress.https.ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- with $np.egress.https.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- range $callee := $facts.calls }}
    {{- $calleeFacts := index $topology $callee }}
    - ports:
        - port: {{ $calleeFacts.grpcPort }}
          protocol: TCP
      to:
        - podSelector:
            matchLabels:
              {{- include "calsync.serverSelector" (dict "root" $root "name" $callee) | nindent 14 }}
    {{- end }}
    {{- with $np.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
The operator's pods (the calsync CLI run in the cluster, labelled app.kubernetes.io/component:
operator and the release's selector labels): nothing may reach them; they may reach DNS and the
gRPC port of every gRPC service, nothing else (not Postgres, NATS or Calendly).
*/}}
{{- define "calsync.operatorNetworkPolicy" -}}
{{- $root := .root }}
{{- $topology := include "calsync.topology" $root | fromYaml }}
{{- $np := $root.Values.networkPolicy }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "calsync.componentName" . }}
  labels:
    {{- include "calsync.componentLabels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "calsync.componentSelector" . | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  ingress: []
  egress:
    - ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
      {{- with $np.egress.dns.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- range $name := keys $topology | sortAlpha }}
    {{- $facts := index $topology $name }}
    {{- if $facts.grpcPort }}
    - ports:
        - port: {{ $facts.grpcPort }}
          protocol: TCP
      to:
        - podSelector:
            matchLabels:
              {{- include "calsync.serverSelector" (dict "root" $root "name" $name) | nindent 14 }}
    {{- end }}
    {{- end }}
{{- end }}
