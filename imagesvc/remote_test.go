package imagesvc

import (
	"net/http"
	"testing"

	"github.com/cri-server/cri-server/config"
)

func TestPlainHTTPOnlyWhereAllowed(t *testing.T) {
	s := &Service{opts: Options{Registry: config.Registry{Insecure: []string{"reg.example", "other.example:5000"}}}}
	for _, tc := range []struct {
		name, host string
		plain      bool
	}{
		{"loopback v4", "127.0.0.1:5000", true},
		{"loopback v6", "[::1]:5000", true},
		{"localhost", "localhost:5000", true},
		{"configured host any port", "reg.example:443", true},
		{"configured host:port", "other.example:5000", true},
		{"configured host other port", "other.example:6000", false},
		{"private address is not insecure", "10.0.0.1:5000", false},
		{"public", "registry.k8s.io", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.plainHTTP(tc.host); got != tc.plain {
				t.Fatalf("plainHTTP(%q) = %v", tc.host, got)
			}
		})
	}
}

type recordScheme struct{ schemes []string }

func (r *recordScheme) RoundTrip(req *http.Request) (*http.Response, error) {
	r.schemes = append(r.schemes, req.URL.Scheme)
	return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
}

// ggcr speaks HTTP to RFC 1918 addresses on its own; the transport puts
// such a registry back on HTTPS unless the config says otherwise.
func TestTransportForcesHTTPS(t *testing.T) {
	base := &recordScheme{}
	tr := &regTransport{base: base, secure: map[string]bool{"10.0.0.1:5000": true}}
	for _, u := range []string{"http://10.0.0.1:5000/v2/", "http://auth.example/token"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if _, err := tr.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
	}
	if base.schemes[0] != "https" || base.schemes[1] != "http" {
		t.Fatalf("schemes sent: %v", base.schemes)
	}
}
