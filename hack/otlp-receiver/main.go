// A minimal OTLP/HTTP metrics receiver for Swell's tests: it decodes each
// ExportMetricsServiceRequest (protobuf, or JSON) with the OpenTelemetry project's own
// protocol definitions (go.opentelemetry.io/proto/otlp), appends it to -out as one JSON
// line, and answers as a collector does. It exits when its standard input closes, so it
// never outlives the test process that started it.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	out := flag.String("out", "", "file that receives one JSON line per export")
	flag.Parse()
	if *out == "" {
		log.Fatal("-out is required")
	}
	f, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	http.HandleFunc("/v1/metrics", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req colmetrics.ExportMetricsServiceRequest
		if r.Header.Get("Content-Type") == "application/json" {
			err = protojson.Unmarshal(body, &req)
		} else {
			err = proto.Unmarshal(body, &req)
		}
		if err != nil {
			http.Error(w, "not an ExportMetricsServiceRequest: "+err.Error(), http.StatusBadRequest)
			return
		}
		line, err := protojson.Marshal(&req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		mu.Lock()
		_, err = f.Write(append(line, '\n'))
		mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, _ := proto.Marshal(&colmetrics.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(resp)
	})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fmt.Printf("listening %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, nil))
}
