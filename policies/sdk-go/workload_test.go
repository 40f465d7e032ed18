package plate

import (
	"encoding/json"
	"strings"
	"testing"
)

const podSpec = `{"containers":[{"name":"a","image":"a:1"}],
	"initContainers":[{"name":"i","image":"i:1"}],
	"ephemeralContainers":[{"name":"e","image":"e:1"}]}`

func wrap(kind string) string {
	switch kind {
	case "Pod":
		return `{"spec":` + podSpec + `}`
	case "PodTemplate":
		return `{"template":{"spec":` + podSpec + `}}`
	case "CronJob":
		return `{"spec":{"jobTemplate":{"spec":{"template":{"spec":` + podSpec + `}}}}}`
	default:
		return `{"spec":{"template":{"spec":` + podSpec + `}}}`
	}
}

func TestFindsContainersInEveryPodBearingKind(t *testing.T) {
	kinds := []string{"Rollout"}
	for _, k := range PodBearingKinds {
		kinds = append(kinds, k[1])
	}
	for _, kind := range kinds {
		list, err := ContainersOf(kind, json.RawMessage(wrap(kind)))
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		var got []string
		for _, c := range list {
			got = append(got, c.Key()+"="+*c.Image+"@"+c.FieldPath("image"))
		}
		base := strings.Join(podSpecPath(kind), ".")
		want := []string{
			"container:a=a:1@" + base + ".containers[0].image",
			"initContainer:i=i:1@" + base + ".initContainers[0].image",
			"ephemeralContainer:e=e:1@" + base + ".ephemeralContainers[0].image",
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s:\n got %v\nwant %v", kind, got, want)
		}
	}
}

func TestObjectsWithoutPodSpecHaveNoContainers(t *testing.T) {
	for kind, object := range map[string]string{
		"Deployment": `{"metadata":{"name":"x"}}`,
		"Service":    `{"spec":{"ports":[]}}`,
		"Custom":     `{"spec":{"template":"text"}}`,
	} {
		list, err := ContainersOf(kind, json.RawMessage(object))
		if err != nil || len(list) != 0 {
			t.Errorf("%s: got %v, %v", kind, list, err)
		}
	}
}

func TestNullListsAreEmptyAndOtherCasesAreNotFields(t *testing.T) {
	object := `{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"a:1"}],"initContainers":null,"Containers":[{"name":"b"}]}}}}`
	list, err := ContainersOf("Deployment", json.RawMessage(object))
	if err != nil || len(list) != 1 || list[0].Name != "a" {
		t.Errorf("got %v, %v", list, err)
	}
}

func TestMalformedPodSpecOfAWorkloadIsAnError(t *testing.T) {
	_, err := ContainersOf("Deployment", json.RawMessage(`{"spec":{"template":{"spec":{"containers":7}}}}`))
	if err == nil || !strings.HasPrefix(err.Error(), "cannot read the pod spec of the Deployment: ") {
		t.Errorf("got %v", err)
	}
}

func TestEphemeralSubresourceJudgesOnlyEphemeralContainers(t *testing.T) {
	req := AdmissionRequest{Kind: GroupVersionKind{Kind: "Pod"}, SubResource: "ephemeralcontainers", Object: json.RawMessage(wrap("Pod"))}
	list, err := ContainersUnderReview(&req)
	if err != nil || len(list) != 1 || list[0].Section != EphemeralContainers {
		t.Errorf("got %v, %v", list, err)
	}
}
