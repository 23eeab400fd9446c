package server

import (
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// eventBuffer is how many events a subscriber may fall behind. A subscriber
// that falls further is disconnected rather than allowed to block the
// runtime; the kubelet then relists, which is its documented fallback.
const eventBuffer = 1024

type eventHub struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	ch      chan *runtime.ContainerEventResponse
	dropped chan struct{} // closed when disconnected for being slow
}

func newEventHub() *eventHub { return &eventHub{subs: map[*subscriber]struct{}{}} }

func (h *eventHub) subscribe() *subscriber {
	s := &subscriber{ch: make(chan *runtime.ContainerEventResponse, eventBuffer), dropped: make(chan struct{})}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *eventHub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// publish never blocks: a full subscriber is cut off.
func (h *eventHub) publish(ev *runtime.ContainerEventResponse) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- ev:
		default:
			delete(h.subs, s)
			close(s.dropped)
		}
	}
}

// emit builds and publishes an event for a container record.
func (s *Server) emit(r *containerRecord, typ runtime.ContainerEventType) {
	ev := &runtime.ContainerEventResponse{
		ContainerId:        r.ID,
		ContainerEventType: typ,
		CreatedAt:          time.Now().UnixNano(),
		ContainersStatuses: []*runtime.ContainerStatus{toCRIStatus(r)},
	}
	if s.podDeps != nil {
		ev.PodSandboxStatus = s.podDeps.PodStatus(bgCtx(), r.PodID)
	}
	s.events.publish(ev)
}

// GetContainerEvents streams events until the client goes or falls too far
// behind.
func (s *Server) GetContainerEvents(r *runtime.GetEventsRequest, stream runtime.RuntimeService_GetContainerEventsServer) error {
	sub := s.events.subscribe()
	defer s.events.unsubscribe(sub)
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case <-sub.dropped:
			// Deliver what was buffered, then end with a clear code.
			for {
				select {
				case ev := <-sub.ch:
					if err := stream.Send(ev); err != nil {
						return err
					}
				default:
					return errdefs.New(errdefs.ErrResourceExhausted, "event subscriber fell %d events behind: relist", eventBuffer)
				}
			}
		case ev := <-sub.ch:
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}
