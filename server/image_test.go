package server

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestImageServiceLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: layers carry owners and device nodes")
	}
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	img, _ := random.Image(1024, 2)
	img, _ = mutate.Config(img, v1.Config{User: "nobody", Cmd: []string{"sh"}})
	ref := host + "/demo/app:v1"
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	conn, _ := startServer(t)
	is := runtime.NewImageServiceClient(conn)
	ctx := context.Background()
	spec := &runtime.ImageSpec{Image: ref}

	st, err := is.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: spec})
	if err != nil || st.Image != nil {
		t.Fatalf("status before pull: %v %v", st, err)
	}
	if _, err := is.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "UPPER/case"}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad reference: %v", err)
	}
	pr, err := is.PullImage(ctx, &runtime.PullImageRequest{Image: spec})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := img.ConfigName()
	if pr.ImageRef != id.String() {
		t.Fatalf("image ref %q, want %s", pr.ImageRef, id)
	}
	st, err = is.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: spec, Verbose: true})
	if err != nil || st.Image == nil {
		t.Fatalf("status: %v %v", st, err)
	}
	if st.Image.Username != "nobody" || st.Image.Size == 0 || len(st.Image.RepoDigests) != 1 || st.Image.RepoTags[0] != ref {
		t.Fatalf("status: %+v", st.Image)
	}
	// critest: status by id, by every tag and every digest is the same.
	plain, _ := is.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: spec})
	for _, byRef := range append(append([]string{pr.ImageRef}, plain.Image.RepoTags...), plain.Image.RepoDigests...) {
		other, err := is.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: byRef}})
		if err != nil || !proto.Equal(other.Image, plain.Image) {
			t.Errorf("status by %q differs: %v %v", byRef, other, err)
		}
	}
	// critest: a pull whose deadline passes answers DeadlineExceeded.
	tctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	time.Sleep(2 * time.Millisecond)
	if _, err := is.PullImage(tctx, &runtime.PullImageRequest{Image: spec}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("pull past its deadline: %v", err)
	}
	var info struct {
		ImageSpec v1.ConfigFile `json:"imageSpec"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.ImageSpec.Config.User != "nobody" {
		t.Fatalf("verbose info: %v %q", err, st.Info["info"])
	}
	for _, f := range []*runtime.ImageFilter{nil, {Image: &runtime.ImageSpec{Image: pr.ImageRef}}} {
		l, err := is.ListImages(ctx, &runtime.ListImagesRequest{Filter: f})
		if err != nil || len(l.Images) != 1 || l.Images[0].Id != pr.ImageRef {
			t.Fatalf("list (filter %v): %v %v", f, l, err)
		}
	}
	l, err := is.ListImages(ctx, &runtime.ListImagesRequest{Filter: &runtime.ImageFilter{Image: &runtime.ImageSpec{Image: "busybox"}}})
	if err != nil || len(l.Images) != 0 {
		t.Fatalf("filter on an absent image: %v %v", l, err)
	}
	stream, err := is.StreamImages(ctx, &runtime.StreamImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var streamed []*runtime.Image
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		streamed = append(streamed, m.Images...)
	}
	if len(streamed) != 1 || streamed[0].Id != pr.ImageRef {
		t.Fatalf("StreamImages: %v", streamed)
	}
	fs, err := is.ImageFsInfo(ctx, &runtime.ImageFsInfoRequest{})
	if err != nil || len(fs.ImageFilesystems) != 1 || fs.ImageFilesystems[0].UsedBytes.Value == 0 {
		t.Fatalf("fs info: %v %v", fs, err)
	}
	for i := 0; i < 2; i++ { // idempotent
		if _, err := is.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: spec}); err != nil {
			t.Fatal(err)
		}
	}
	st, err = is.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: spec})
	if err != nil || st.Image != nil {
		t.Fatalf("status after remove: %v %v", st, err)
	}
}
