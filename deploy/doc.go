// Package deploy holds no Go code. Its directory is kiln's deployment
// material: Kubernetes manifests and a Kustomize base (kubernetes/),
// Jenkins pipelines and pod templates (jenkins/), a GitLab CI template
// (gitlab/), a Tekton Task and Pipeline (tekton/) and multi-architecture
// builds (multiarch/).
//
// Its tests decode every file strictly into the real types (Kubernetes,
// Kustomize, Tekton) or into models of the CI keywords used (GitLab,
// Jenkins), check that the files agree with each other, and parse every kiln
// command line in them with kiln's own flag parser.
package deploy
