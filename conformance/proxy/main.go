// Command proxy is the reverse proxy that `make conformance` runs the HTTP caching test suite
// (http-cache-tests, the suite behind cache-tests.fyi) against: stampede in front of
// httputil.ReverseProxy, configured as the README's quick start does (a 64 MiB memory store,
// stampede.New(logger, store, time.Minute), cache.Handler(proxy)).
//
//	go run ./conformance/proxy -origin http://127.0.0.1:8000
//
// It prints one line, "listening on HOST:PORT", once it accepts connections, and shuts down cleanly on
// SIGINT or SIGTERM. Logs go to stderr at warn level unless -log-level says otherwise.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks a free one)")
	origin := flag.String("origin", "", "origin base URL, e.g. http://127.0.0.1:8000 (required)")
	ttl := flag.Duration("ttl", time.Minute, "handler TTL: the third argument of stampede.New")
	swr := flag.Duration("stale-while-revalidate", 0, "WithStaleWhileRevalidate (0 = option not set)")
	sie := flag.Duration("stale-if-error", 0, "WithStaleIfError (0 = option not set)")
	honorReqCC := flag.Bool("honor-request-cc", false, "WithHonorRequestCacheControl(true)")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fatalf("bad -log-level %q: %v", *logLevel, err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	if *origin == "" {
		fatalf("-origin is required")
	}
	target, err := url.Parse(*origin)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		fatalf("bad -origin %q: want an absolute http(s) URL", *origin)
	}

	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// Send the origin its own authority, as a reverse proxy in front of a named backend does.
			// The suite's origin identifies a test by the path (/test/<uuid>, /config/<uuid>,
			// /state/<uuid>) and the Req-Num request header, both passed through unchanged.
			pr.Out.Host = target.Host
		},
		// Some tests make the origin drop the connection; the resulting 502s are expected, so the
		// proxy's own error lines are logged at info, below the default level.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelInfo),
	}

	store, err := memstore.New(64 << 20)
	if err != nil {
		fatalf("memstore: %v", err)
	}
	defer store.Close()
	var opts []stampede.Option
	if *swr > 0 {
		opts = append(opts, stampede.WithStaleWhileRevalidate(*swr))
	}
	if *sie > 0 {
		opts = append(opts, stampede.WithStaleIfError(*sie))
	}
	if *honorReqCC {
		opts = append(opts, stampede.WithHonorRequestCacheControl(true))
	}
	cache := stampede.New(logger, store, *ttl, opts...)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fatalf("listen: %v", err)
	}
	srv := &http.Server{
		Handler:           cache.Handler(proxy),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(os.Stderr, "proxy: ", 0),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("listening on %s\n", ln.Addr()) // after NotifyContext: a signal from here on is a clean stop
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			fatalf("serve: %v", err)
		}
	case <-ctx.Done():
		stop() // a second signal kills the process the default way
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			logger.Warn("shutdown", "err", err)
			_ = srv.Close()
		}
		cache.Wait() // background refreshes and store writes
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "proxy: "+format+"\n", args...)
	os.Exit(2)
}
