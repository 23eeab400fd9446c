/*
Copyright 2026 The cri-server Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// cri-server patch: SPDY tunneled over websocket (KEP-4006), the protocol
// client-go's NewSPDYOverWebsocketDialer speaks. Not in upstream
// k8s.io/cri-streaming v0.37.2; see README.cri-server.md.

package portforward

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/websocket"
	"k8s.io/klog/v2"

	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// tunnelingProtocols are the websocket subprotocols offered for SPDY
// tunneling: each SPDY port-forward protocol with the tunneling prefix.
func tunnelingProtocols(spdyProtocols []string) []string {
	out := make([]string, 0, len(spdyProtocols))
	for _, p := range spdyProtocols {
		out = append(out, WebsocketsSPDYTunnelingPrefix+p)
	}
	return out
}

// handleTunnelingStreams serves a websocket request whose subprotocol is
// "SPDY/3.1+<spdy protocol>". The websocket carries raw SPDY frames in binary
// messages, with no second HTTP upgrade inside: the client starts a SPDY
// client connection on the tunnel as soon as the websocket handshake is
// done. So the server starts a SPDY server connection on the websocket and
// hands it to the same httpStreamHandler that plain SPDY uses.
func handleTunnelingStreams(req *http.Request, w http.ResponseWriter, portForwarder PortForwarder, podName string, uid string, supportedPortForwardProtocols []string, idleTimeout, streamCreationTimeout time.Duration) error {
	allowed := tunnelingProtocols(supportedPortForwardProtocols)
	var serveErr error
	served := false
	srv := websocket.Server{
		// Returning an error here makes x/net/websocket answer 403, which is
		// what the client reports as an unsupported protocol.
		Handshake: func(config *websocket.Config, _ *http.Request) error {
			for _, requested := range config.Protocol {
				for _, a := range allowed {
					if strings.TrimSpace(requested) == a {
						config.Protocol = []string{a}
						return nil
					}
				}
			}
			serveErr = fmt.Errorf("port forward: tunneling protocol(s) %v not supported, want one of %v", config.Protocol, allowed)
			return serveErr
		},
		Handler: func(ws *websocket.Conn) {
			served = true
			// The client rejects text messages on the tunnel.
			ws.PayloadType = websocket.BinaryFrame
			serveErr = serveSPDYOnTunnel(ws, portForwarder, podName, uid, idleTimeout, streamCreationTimeout)
		},
	}
	srv.ServeHTTP(w, req)
	if serveErr == nil && !served {
		serveErr = fmt.Errorf("port forward: websocket tunneling handshake failed")
	}
	return serveErr
}

// serveSPDYOnTunnel runs a SPDY server connection over the websocket until
// the client closes it or it sits idle for idleTimeout.
func serveSPDYOnTunnel(ws *websocket.Conn, portForwarder PortForwarder, podName string, uid string, idleTimeout, streamCreationTimeout time.Duration) error {
	streamChan := make(chan httpstream.Stream, 1)
	conn, err := spdy.NewServerConnection(ws, httpStreamReceived(streamChan))
	if err != nil {
		return fmt.Errorf("port forward: start SPDY over websocket: %w", err)
	}
	defer conn.Close()
	klog.V(5).InfoS("Port forward over websocket tunnel", "connection", conn, "idleTimeout", idleTimeout)
	conn.SetIdleTimeout(idleTimeout)

	h := &httpStreamHandler{
		conn:                  conn,
		streamChan:            streamChan,
		streamPairs:           make(map[string]*httpStreamPair),
		streamCreationTimeout: streamCreationTimeout,
		pod:                   podName,
		uid:                   uid,
		forwarder:             portForwarder,
	}
	h.run()
	return nil
}
