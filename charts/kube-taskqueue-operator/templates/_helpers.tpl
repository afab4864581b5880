{{/* Names and labels. Every define is prefixed with the chart name. */}}

{{- define "kube-taskqueue-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kube-taskqueue-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that never change for a release: used in selectors (no chart version). */}}
{{- define "kube-taskqueue-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-taskqueue-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kube-taskqueue-operator.labels" -}}
{{ include "kube-taskqueue-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: taskqueue
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "kube-taskqueue-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kube-taskqueue-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kube-taskqueue-operator.image" -}}
{{- $repository := required "image.repository is not set: build the operator image from operator/Dockerfile, push it to your registry and set image.repository (docs/how-to/images.md)" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Kubernetes version check. Chart.yaml's kubeVersion would also refuse plain
     `helm template`, whose built-in version is v1.20.0, so GitOps tools that render offline
     could not use the chart. The check runs where the version is real: against a cluster
     (install, upgrade, template --validate), or when a version was passed with
     --kube-version (as Argo CD does with the destination cluster's). */}}
{{- define "kube-taskqueue-operator.checkKubeVersion" -}}
{{- $version := .Capabilities.KubeVersion.Version -}}
{{- $connected := lookup "v1" "Namespace" "" "kube-system" -}}
{{- if and (or $connected (ne $version "v1.20.0")) (semverCompare "<1.27.0-0" $version) -}}
{{- fail (printf "kube-taskqueue-operator needs Kubernetes 1.27 or newer (the CRD's validation rules use CEL messageExpression); this cluster is %s" $version) -}}
{{- end -}}
{{- end -}}

{{- define "kube-taskqueue-operator.webhookService" -}}
{{- printf "%s-webhook" (include "kube-taskqueue-operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kube-taskqueue-operator.webhookSecret" -}}
{{- printf "%s-webhook-tls" (include "kube-taskqueue-operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The permissions the operator uses, by where they are granted (kept equal to
     operator/kube_taskqueue_operator/permissions.py by tests/chart/test_rbac.py). */}}

{{/* Scope.CLUSTER: cluster-scoped resources. */}}
{{- define "kube-taskqueue-operator.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["taskqueue.dev"]
  resources: ["taskqueuepolicies"]
  verbs: ["get", "list", "watch"]
{{- if and .Values.shard.claimsClusterWide .Values.watchNamespaces }}
- apiGroups: ["taskqueue.dev"]
  resources: ["taskqueues"]
  verbs: ["get", "list", "watch"]
{{- end }}
{{- if .Values.peering.enabled }}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings", "clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "patch", "create"]
{{- end }}
{{- end -}}

{{/* Scope.WATCHED: the TaskQueue API, where TaskQueues are watched. */}}
{{- define "kube-taskqueue-operator.taskqueueRules" -}}
- apiGroups: ["taskqueue.dev"]
  resources: ["taskqueues"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["taskqueue.dev"]
  resources: ["taskqueues/status"]
  verbs: ["get", "patch"]
{{- end -}}

{{/* Scope.TENANT: the workloads of TaskQueues, bound in tenant namespaces only. Secrets by
     name only, and no Secrets rule at all when no policy allows a credentials Secret. */}}
{{- define "kube-taskqueue-operator.tenantRules" -}}
- apiGroups: ["taskqueue.dev"]
  resources: ["taskqueues/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects", "triggerauthentications"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- $secrets := include "kube-taskqueue-operator.credentialsSecrets" . | fromJsonArray }}
{{- if $secrets }}
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: {{ toJson $secrets }}
  verbs: ["get"]
{{- end }}
{{- end -}}

{{/* Tenant namespaces (JSON list, sorted): watched ones, tenancy.namespaces and those the
     chart's TaskQueuePolicies name. Namespaces a policy selects by label are bound by the
     platform team (values.yaml, tenancy). */}}
{{- define "kube-taskqueue-operator.tenantNamespaces" -}}
{{- $names := concat .Values.watchNamespaces .Values.tenancy.namespaces -}}
{{- range .Values.tenancy.policies -}}
{{- $names = concat $names ((.spec).namespaces | default list) -}}
{{- end -}}
{{- $names | uniq | sortAlpha | toJson -}}
{{- end -}}

{{/* The credentials Secret names any policy allows (JSON list, sorted). */}}
{{- define "kube-taskqueue-operator.credentialsSecrets" -}}
{{- $names := .Values.tenancy.defaultPolicy.credentialsSecrets | default list -}}
{{- range .Values.tenancy.policies -}}
{{- $names = concat $names ((.spec).credentialsSecrets | default list) -}}
{{- end -}}
{{- $names | uniq | sortAlpha | toJson -}}
{{- end -}}
