// Command reviewsize measures how large an AdmissionReview the API server sends can
// be for objects etcd can store (issue 15 point 8; figures in docs/security.md). It
// builds objects as the API server holds them when it calls a validating webhook,
// grows each until its storage encoding (protobuf, exactly as the API server writes
// it to etcd) is as large as etcd's default request limit allows, and encodes the
// UPDATE review with that object as both object and oldObject using the API server's
// own JSON serializer. Run it with bench/review-size.sh.
//
// Shapes (each an object etcd accepts):
//   - pod-containers: a Pod with many small containers, defaulted by the API
//     server's defaulting functions, with the ServiceAccount admission plugin's
//     token volume mounted in every container and managedFields listing every field,
//     as a create by kubectl records them (issue 15's 10,001-container Pod);
//   - pod-containers-bare: the same without managedFields;
//   - pod-env-escaped: one container whose env values are '<' characters, which
//     Go's JSON encoder writes as \u003c (6 bytes for 1 stored byte): the largest
//     JSON per stored byte a string can produce;
//   - configmap-escaped: a ConfigMap at its 1 MiB data limit, of '<' characters.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	jsonserializer "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	corev1defaults "k8s.io/kubernetes/pkg/apis/core/v1"
)

// etcd's default --max-request-bytes (go.etcd.io/etcd/server/v3/embed.DefaultMaxRequestBytes).
const etcdMaxRequestBytes = 1.5 * 1024 * 1024

// Room left in etcd's request for the key, the transaction and the raft framing.
const etcdRequestOverhead = 1024

var scheme = runtime.NewScheme()

func init() {
	must(corev1.AddToScheme(scheme))
	must(admissionv1.AddToScheme(scheme))
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// storageBytes is the object as the API server writes it to etcd: "k8s\0" and a
// runtime.Unknown holding the protobuf encoding.
func storageBytes(obj runtime.Object) int {
	var buf bytes.Buffer
	must(protobuf.NewSerializer(scheme, scheme).Encode(obj, &buf))
	return buf.Len()
}

func jsonBytes(obj runtime.Object) []byte {
	var buf bytes.Buffer
	must(jsonserializer.NewSerializerWithOptions(jsonserializer.DefaultMetaFactory, scheme, scheme, jsonserializer.SerializerOptions{}).Encode(obj, &buf))
	return buf.Bytes()
}

// reviewBytes is the UPDATE review the webhook receives, with obj as both objects.
func reviewBytes(obj runtime.Object, gvk schema.GroupVersionKind, resource string, name string) []byte {
	review := &admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:             types.UID("705ab4f5-6393-11e8-b7cc-42010a800002"),
			Kind:            metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
			Resource:        metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: resource},
			RequestKind:     &metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
			RequestResource: &metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: resource},
			Name:            name,
			Namespace:       "plate-prod",
			Operation:       admissionv1.Update,
			UserInfo: authenticationv1.UserInfo{
				Username: "kubernetes-admin",
				Groups:   []string{"kubeadm:cluster-admins", "system:authenticated"},
			},
			Object:    runtime.RawExtension{Object: obj},
			OldObject: runtime.RawExtension{Object: obj},
			DryRun:    new(bool),
			Options:   runtime.RawExtension{Object: &metav1.UpdateOptions{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "UpdateOptions"}, FieldManager: "kubectl-edit"}},
		},
	}
	return jsonBytes(review)
}

// fieldsV1 is the managedFields entry a field manager records for everything in doc
// (a decoded JSON object): lists of containers and env vars keyed by name, as the
// Pod schema's list-map keys make them.
func fieldsV1(doc map[string]any) map[string]any {
	out := map[string]any{}
	for key, value := range doc {
		switch v := value.(type) {
		case map[string]any:
			out["f:"+key] = fieldsV1(v)
		case []any:
			items := map[string]any{}
			for _, item := range v {
				m, ok := item.(map[string]any)
				name, named := m["name"].(string)
				if !ok || !named {
					continue
				}
				fields := fieldsV1(m)
				fields["."] = map[string]any{}
				items[fmt.Sprintf(`k:{"name":%q}`, name)] = fields
			}
			out["f:"+key] = items
		default:
			out["f:"+key] = map[string]any{}
		}
	}
	return out
}

func withManagedFields(pod *corev1.Pod) {
	raw, err := json.Marshal(pod.Spec)
	must(err)
	var spec map[string]any
	must(json.Unmarshal(raw, &spec))
	fields, err := json.Marshal(map[string]any{"f:spec": fieldsV1(spec)})
	must(err)
	now := metav1.Now()
	pod.ManagedFields = []metav1.ManagedFieldsEntry{{
		Manager: "kubectl-create", Operation: metav1.ManagedFieldsOperationUpdate,
		APIVersion: "v1", Time: &now, FieldsType: "FieldsV1",
		FieldsV1: &metav1.FieldsV1{Raw: fields},
	}}
}

func basePod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "big", Namespace: "plate-prod", UID: "0b9e6a7c-5f8d-4a43-a0e6-3f0f1b1c2d3e",
			ResourceVersion: "123456", Generation: 1, CreationTimestamp: metav1.Now(),
		},
	}
}

// podWithContainers is a Pod of n containers as the validating webhooks see it.
func podWithContainers(n int, managed bool) runtime.Object {
	pod := basePod()
	mount := corev1.VolumeMount{Name: "kube-api-access-7xk2p", ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}
	for i := 0; i < n; i++ {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
			Name: fmt.Sprintf("c%d", i), Image: "nginx:1.25", VolumeMounts: []corev1.VolumeMount{mount},
		})
	}
	pod.Spec.ServiceAccountName = "default"
	pod.Spec.Volumes = []corev1.Volume{{Name: "kube-api-access-7xk2p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}},
	}}}}
	corev1defaults.SetObjectDefaults_Pod(pod)
	if managed {
		withManagedFields(pod)
	}
	return pod
}

func podWithEscapedEnv(n int) runtime.Object {
	pod := basePod()
	var env []corev1.EnvVar
	value := strings.Repeat("<", 1000)
	for i := 0; i < n; i++ {
		env = append(env, corev1.EnvVar{Name: fmt.Sprintf("V%d", i), Value: value})
	}
	pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "nginx:1.25", Env: env}}
	corev1defaults.SetObjectDefaults_Pod(pod)
	return pod
}

func configMapEscaped(n int) runtime.Object {
	// ConfigMap validation caps data at 1 MiB (core validation MaxSecretSize).
	if n > 1024*1024 {
		n = 1024 * 1024
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "plate-prod", ResourceVersion: "1"},
		Data:       map[string]string{"page.html": strings.Repeat("<", n)},
	}
}

// largest finds the largest n whose object still fits etcd's request limit.
func largest(build func(int) runtime.Object, hi int) (int, runtime.Object) {
	limit := int(etcdMaxRequestBytes) - etcdRequestOverhead
	lo := 1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if storageBytes(build(mid)) <= limit {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, build(lo)
}

func main() {
	shapes := []struct {
		name     string
		build    func(int) runtime.Object
		hi       int
		gvk      schema.GroupVersionKind
		resource string
	}{
		{"pod-containers", func(n int) runtime.Object { return podWithContainers(n, true) }, 40000, corev1.SchemeGroupVersion.WithKind("Pod"), "pods"},
		{"pod-containers-bare", func(n int) runtime.Object { return podWithContainers(n, false) }, 40000, corev1.SchemeGroupVersion.WithKind("Pod"), "pods"},
		{"pod-env-escaped", podWithEscapedEnv, 4000, corev1.SchemeGroupVersion.WithKind("Pod"), "pods"},
		{"configmap-escaped", configMapEscaped, 1024 * 1024, corev1.SchemeGroupVersion.WithKind("ConfigMap"), "configmaps"},
	}
	fmt.Printf("etcd request limit %d bytes (%d left for the stored object)\n", int(etcdMaxRequestBytes), int(etcdMaxRequestBytes)-etcdRequestOverhead)
	fmt.Printf("%-20s %8s %12s %12s %14s\n", "shape", "n", "stored", "object JSON", "UPDATE review")
	for _, s := range shapes {
		n, obj := largest(s.build, s.hi)
		fmt.Printf("%-20s %8d %12d %12d %14d\n", s.name, n, storageBytes(obj), len(jsonBytes(obj)), len(reviewBytes(obj, s.gvk, s.resource, "big")))
	}
}
