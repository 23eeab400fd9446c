package server

import (
	"context"
	"encoding/json"

	"golang.org/x/sys/unix"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStatus answers from memory: no process is asked, so status
// polls stay cheap at density.
func (s *Server) ContainerStatus(ctx context.Context, r *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	rec, _, err := s.ctrs.resolve(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	resp := &runtime.ContainerStatusResponse{Status: toCRIStatus(rec)}
	if r.GetVerbose() {
		info, _ := json.Marshal(map[string]any{"pid": rec.Status.Pid, "bundle": rec.Bundle, "user": rec.User})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

func unixNano(t interface {
	UnixNano() int64
	IsZero() bool
}) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func toCRIStatus(rec *containerRecord) *runtime.ContainerStatus {
	st := rec.Status
	gids := make([]int64, len(rec.User.AdditionalGids))
	for i, g := range rec.User.AdditionalGids {
		gids[i] = int64(g)
	}
	out := &runtime.ContainerStatus{
		Id:          rec.ID,
		Metadata:    rec.Metadata,
		State:       st.State,
		CreatedAt:   unixNano(st.CreatedAt),
		StartedAt:   unixNano(st.StartedAt),
		FinishedAt:  unixNano(st.FinishedAt),
		ExitCode:    st.ExitCode,
		Image:       rec.Image,
		ImageRef:    rec.ImageRef,
		ImageId:     rec.ImageID,
		Reason:      st.Reason,
		Message:     st.Message,
		Labels:      rec.Labels,
		Annotations: rec.Annotations,
		Mounts:      rec.Mounts,
		LogPath:     rec.LogPath,
		StopSignal:  runtime.Signal(runtime.Signal_value["SIGNAL_"+unix.SignalName(unix.Signal(rec.StopSignal))]),
		User: &runtime.ContainerUser{Linux: &runtime.LinuxContainerUser{
			Uid: int64(rec.User.UID), Gid: int64(rec.User.GID), SupplementalGroups: gids}},
	}
	if st.Resources != nil {
		out.Resources = &runtime.ContainerResources{Linux: st.Resources}
	}
	if st.State != runtime.ContainerState_CONTAINER_EXITED {
		// Reason/message of a failed start belong to the exit; a live
		// container reports none.
		out.Reason, out.Message = "", ""
	}
	return out
}

func toCRIContainer(rec *containerRecord) *runtime.Container {
	return &runtime.Container{
		Id: rec.ID, PodSandboxId: rec.PodID, Metadata: rec.Metadata, Image: rec.Image, ImageRef: rec.ImageRef,
		ImageId: rec.ImageID, State: rec.Status.State, CreatedAt: unixNano(rec.Status.CreatedAt),
		Labels: rec.Labels, Annotations: rec.Annotations,
	}
}
