{{/* Names, labels and the operator's RBAC rules. */}}

{{- define "erlmcp-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "erlmcp-operator.fullname" -}}
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

{{- define "erlmcp-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "erlmcp-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "erlmcp-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "erlmcp-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: erlmcp
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "erlmcp-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "erlmcp-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "erlmcp-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* "true" when the operator competes for the leader Lease. */}}
{{- define "erlmcp-operator.leaderElect" -}}
{{- $e := .Values.leaderElection.enabled }}
{{- if eq (toString $e) "auto" }}
{{- if gt (int .Values.replicaCount) 1 }}true{{ else }}false{{ end }}
{{- else if $e }}true{{ else }}false{{ end }}
{{- end }}

{{/*
What the operator calls in every namespace it watches: exactly these kinds and verbs, no
wildcards. operator/tests/packaging/rbac.rs records the calls a real operator process makes
against a fake API server and fails when this list and the calls differ.
- apply (server-side, which creates on first apply: create + patch), list what it owns (list),
  prune (delete), and watch the kinds the controller owns (watch);
- Secrets are never applied: generated ones are created once (get, create), referenced ones
  read (get) for the pod-template checksum;
- get: its StatefulSet (status);
- erlmcpclusters: list/watch; status: patch (conditions);
- events.k8s.io events: create, and patch for a repeated event's series;
- the data plane's Role grants endpointslices get/list/watch, erlmcpclusters get and
  erlmcpclusters/status get/patch: Kubernetes lets the operator grant only what it holds;
- erlmcpclusters/finalizers update: owner references with blockOwnerDeletion need it where the
  OwnerReferencesPermissionEnforcement admission plugin is on (e.g. OpenShift).
policy and autoscaling cover both versions: policy/v1 and v1beta1 PodDisruptionBudgets,
autoscaling/v2 and v2beta2 HorizontalPodAutoscalers (Kubernetes 1.20 serves only the betas).
*/}}
{{- define "erlmcp-operator.rules" -}}
- apiGroups: [erlmcp.io]
  resources: [erlmcpclusters]
  verbs: [get, list, watch]
- apiGroups: [erlmcp.io]
  resources: [erlmcpclusters/status]
  verbs: [get, patch]
- apiGroups: [erlmcp.io]
  resources: [erlmcpclusters/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, delete, get, list, update, watch]
- apiGroups: [""]
  resources: [configmaps, serviceaccounts, services]
  verbs: [create, delete, list, patch, watch]
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [create, delete, get, list, patch, watch]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [rolebindings, roles]
  verbs: [create, delete, list, patch, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [create, delete, list, patch, watch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [create, delete, list, patch, watch]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [create, delete, list, patch, watch]
- apiGroups: [monitoring.coreos.com]
  resources: [prometheusrules, servicemonitors]
  verbs: [create, delete, list, patch]
- apiGroups: [cert-manager.io]
  resources: [certificates]
  verbs: [create, delete, list, patch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
# Pod readiness decides which members count as live (metadata and conditions are all it keeps).
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/* The leader Lease, in the release namespace: created once, then read and renewed by name. */}}
{{- define "erlmcp-operator.leaderRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [erlmcp-operator-leader]
  verbs: [get, patch]
{{- end }}
