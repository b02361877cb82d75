// Package deploy holds no Go code. Its directory is kiln's deployment
// material: Kubernetes manifests and a Kustomize base (kubernetes/),
// registry credentials as a Secret or a ConfigMap (credentials/), Jenkins
// pipelines, pod templates and a freestyle job (jenkins/), a GitLab CI
// template (gitlab/), a Tekton Task and Pipeline (tekton/),
// multi-architecture builds (multiarch/), Huawei SWR end to end (swr/),
// caching between builds (caching/), the executor image's Dockerfile
// (image/) and troubleshooting.md.
//
// Its tests decode every file strictly into the real types (Kubernetes,
// Kustomize, Tekton) or into models of the CI keywords used (GitLab,
// Jenkins pipelines and job config.xml), check that the files agree with
// each other, parse every kiln command line in them with kiln's own flag
// parser, and check the links of the documents.
package deploy
