// A design probe, not a product: the relay job in Go's standard library (net/http +
// httputil.ReverseProxy, flushing every write so SSE passes event by event), with the
// per-request work a real proxy keeps: decode the JSON body for the model, inject the key,
// one JSON log line. Built and run by bench/contestants.py with GOMAXPROCS=1 (one core, like
// every contestant).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:8080", "listen address")
	upstream := flag.String("upstream", "", "upstream origin")
	key := flag.String("key", "bench-upstream-key-not-a-secret", "upstream key")
	flag.Parse()
	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		slog.Error("bad -upstream", "value", *upstream)
		os.Exit(2)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	var served atomic.Int64
	transport := &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096,
		IdleConnTimeout: 90 * time.Second, DisableCompression: true}
	proxy := &httputil.ReverseProxy{
		Transport:     transport,
		FlushInterval: -1,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = target.Scheme
			r.Out.URL.Host = target.Host
			r.Out.URL.Path = "/api/paas/v4" + strings.TrimPrefix(r.In.URL.Path, "/v1")
			r.Out.Host = target.Host
			r.Out.Header.Del("X-Api-Key")
			r.Out.Header.Set("Authorization", "Bearer "+*key)
		},
	}
	http.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	http.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		started := time.Now()
		body, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		var payload struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal(body, &payload)
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		proxy.ServeHTTP(w, r)
		served.Add(1)
		logger.Info("request", "path", r.URL.Path, "model", payload.Model,
			"duration_ms", float64(time.Since(started).Microseconds())/1000)
	})
	server := &http.Server{Addr: *addr, ReadHeaderTimeout: 10 * time.Second}
	if err := server.ListenAndServe(); err != nil {
		slog.Error("serve", "err", err)
		os.Exit(1)
	}
}
