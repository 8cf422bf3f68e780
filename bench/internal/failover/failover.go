// Package failover measures stampede over a Redis that fails over under load: a Sentinel group (one
// master, one replica, three sentinels) or a Redis Cluster (three masters with a replica each), real
// redis-server processes started by internal/redistest, losing a master by kill -9, by SIGSTOP or by a
// planned failover (SENTINEL FAILOVER, CLUSTER FAILOVER) while three replicas of a service serve a Zipf
// key set.
//
// Each replica is a stampede.Cache in front of a real net/http server and a stampede.Loader, each over
// its own go-redis client and redisstore.Store, all in this process. An open-loop generator sends a
// fixed rate of requests, round robin over the replicas, a share of them Loader.Get calls; purges
// (Cache.Purge) and invalidations (Loader.Invalidate) are mixed in, and the origin (handler and load
// function) serves a version of each item that it bumps before each purge or invalidation. Every
// request, load and purge is recorded with its times; the analysis turns them into the figures the
// report gives (see Result).
package failover

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/internal/redistest"
)

// Config is what a run varies. Zero fields are not defaults: use DefaultConfig and change fields.
type Config struct {
	Rate           int           // requests per second, HTTP and loader together
	LoaderShare    float64       // the share of requests that are Loader.Get calls
	Items          int           // size of the key set
	ZipfS          float64       // Zipf exponent of the key choice (> 1)
	PurgeRate      float64       // Cache.Purge calls per second
	InvalidateRate float64       // Loader.Invalidate calls per second
	OriginDelay    time.Duration // how long the handler and the load function take
	Before         time.Duration // steady load measured before the fault
	After          time.Duration // load measured after the failover's end
	NodeTimeout    time.Duration // cluster-node-timeout
	DownAfter      time.Duration // Sentinel's down-after-milliseconds
	StoreTimeout   time.Duration // WithStoreTimeout and redisstore.WithTimeout; 0 leaves both at their defaults
	Batching       int           // redisstore.WithBatching; 0 leaves the default
	Fleet          time.Duration // WithFleetCoalescing's lease; 0 turns fleet coalescing off
	BreakerFails   int           // WithCircuitBreaker's failures; 0 leaves the default
	ClientDefaults bool          // go-redis clients with its defaults (ContextTimeoutEnabled aside), not redisstore's recommended settings
	Replicas       int           // replicas of the Sentinel master and of each cluster master
	MinReplicas    int           // min-replicas-to-write on every data server (0: off)
	PartialCluster bool          // cluster-require-full-coverage no: masters serve their slots while another's are uncovered
	PauseWrites    bool          // a planned Sentinel failover pauses the old master's writes first (CLIENT PAUSE WRITE)
	Seed           int64
	Verbose        bool // log what redistest logs
}

// DefaultConfig is the configuration of `make failover`.
func DefaultConfig() Config {
	return Config{
		Rate:           1000,
		LoaderShare:    0.25,
		Items:          2000,
		ZipfS:          1.1,
		PurgeRate:      10,
		InvalidateRate: 10,
		OriginDelay:    2 * time.Millisecond,
		Before:         5 * time.Second,
		After:          10 * time.Second,
		NodeTimeout:    5 * time.Second,
		DownAfter:      5 * time.Second,
		Fleet:          5 * time.Second,
		Replicas:       1,
		Seed:           1,
	}
}

// Scenario is one topology and one way of losing its master.
type Scenario struct {
	Topology string // "sentinel" or "cluster"
	Fault    string // "kill" (SIGKILL), "stop" (SIGSTOP, SIGCONT after the failover), "planned", or "none"
}

// String returns "topology fault", as the report names the scenario.
func (s Scenario) String() string { return s.Topology + " " + s.Fault }

// Scenarios lists every scenario, in the report's order.
func Scenarios() []Scenario {
	var all []Scenario
	for _, top := range []string{"sentinel", "cluster"} {
		for _, f := range []string{"none", "kill", "stop", "planned"} {
			all = append(all, Scenario{top, f})
		}
	}
	return all
}

// ParseScenario parses "topology fault" or "topology-fault".
func ParseScenario(s string) (Scenario, error) {
	for _, sc := range Scenarios() {
		if s == sc.String() || s == sc.Topology+"-"+sc.Fault {
			return sc, nil
		}
	}
	return Scenario{}, fmt.Errorf("failover: unknown scenario %q (want e.g. cluster-kill, sentinel-stop)", s)
}

// marks are the times of a scenario's events, since the start of the warm-up.
type marks struct {
	begin    time.Duration // the measured load started
	fault    time.Duration // the fault was injected (the kill, the SIGSTOP, the failover command)
	promoted time.Duration // the replica first said it was a master; 0 when not seen
	switched time.Duration // a sentinel first published +switch-master; 0 when not seen or not Sentinel
	end      time.Duration // the failover's end: every running sentinel or node names the new master, which says it is one
	thawed   time.Duration // the frozen master was resumed; 0 when not frozen
	stop     time.Duration // the load stopped
}

// Run runs one scenario with cfg and returns what it measured. progress is told what it is doing.
func Run(ctx context.Context, cfg Config, sc Scenario, progress func(string)) (Result, error) {
	t := &harnessTB{verbose: cfg.Verbose}
	defer t.close()
	var res Result
	err := runGuarded(t, func() { res = run(ctx, t, cfg, sc, progress) })
	return res, err
}

// group is the Redis side of a scenario: a topology, the master that fails and how it fails.
type group struct {
	newClient func() redis.UniversalClient
	victim    *redistest.Server
	replicas  []*redistest.Server // the victim's replicas, one of which takes over (watched for its promotion)
	sentinels []string            // the sentinels' addresses, for +switch-master; nil for a cluster
	// fail injects the fault and returns once the failover has ended; thaw resumes a frozen master.
	fail func(fault string) (thaw func())
	// all is true when every key lives on the victim (Sentinel).
	all bool
}

func startGroup(t *harnessTB, cfg Config, topology string) *group {
	recommended := func(o *redis.Options) {
		o.ContextTimeoutEnabled = true
		if cfg.ClientDefaults {
			return
		}
		o.DialTimeout, o.DialerRetries = 200*time.Millisecond, 1
		o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
		o.MaxRetries = -1
	}
	var serverArgs []string
	if cfg.MinReplicas > 0 {
		serverArgs = append(serverArgs, "--min-replicas-to-write", strconv.Itoa(cfg.MinReplicas), "--min-replicas-max-lag", "10")
	}
	switch topology {
	case "sentinel":
		g := redistest.StartSentinel(t, redistest.SentinelConfig{Replicas: cfg.Replicas, DownAfter: cfg.DownAfter, ServerArgs: serverArgs})
		victim := g.Master()
		grp := &group{victim: victim, replicas: g.Servers()[1:], sentinels: g.SentinelAddrs(), all: true}
		grp.newClient = func() redis.UniversalClient {
			var o redis.Options
			recommended(&o)
			c := redis.NewFailoverClient(&redis.FailoverOptions{
				MasterName: g.MasterName(), SentinelAddrs: g.SentinelAddrs(),
				ContextTimeoutEnabled: o.ContextTimeoutEnabled, DialTimeout: o.DialTimeout, DialerRetries: o.DialerRetries,
				ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, PoolTimeout: o.PoolTimeout, MaxRetries: o.MaxRetries,
			})
			t.Cleanup(func() { _ = c.Close() })
			return c
		}
		grp.fail = func(fault string) func() {
			switch fault {
			case "kill":
				victim.Stop()
				g.WaitFailover(victim)
			case "stop":
				victim.Freeze()
				g.WaitFailover(victim)
				return victim.Thaw
			case "planned":
				if cfg.PauseWrites {
					// Writes wait on the old master until the clients have moved to the new one, so none
					// is acknowledged there and lost; they time out in the store instead.
					pause := strconv.FormatInt((cfg.DownAfter + 10*time.Second).Milliseconds(), 10)
					if _, err := victim.Do("CLIENT", "PAUSE", pause, "WRITE"); err != nil {
						t.Fatalf("failover: CLIENT PAUSE WRITE: %v", err)
					}
				}
				g.Failover()
			}
			return nil
		}
		return grp
	case "cluster":
		if cfg.PartialCluster {
			serverArgs = append(serverArgs, "--cluster-require-full-coverage", "no")
		}
		cl := redistest.StartClusterWith(t, redistest.ClusterConfig{Masters: 3, Replicas: cfg.Replicas, NodeTimeout: cfg.NodeTimeout, ServerArgs: serverArgs})
		victim := cl.Masters()[0]
		grp := &group{victim: victim, replicas: cl.ReplicasOf(victim)}
		grp.newClient = func() redis.UniversalClient {
			var o redis.Options
			recommended(&o)
			c := redis.NewClusterClient(&redis.ClusterOptions{
				Addrs:                 cl.Addrs(),
				ContextTimeoutEnabled: o.ContextTimeoutEnabled, DialTimeout: o.DialTimeout, DialerRetries: o.DialerRetries,
				ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, PoolTimeout: o.PoolTimeout, MaxRetries: o.MaxRetries,
			})
			t.Cleanup(func() { _ = c.Close() })
			return c
		}
		grp.fail = func(fault string) func() {
			switch fault {
			case "kill":
				victim.Stop()
				cl.WaitFailover(victim)
			case "stop":
				victim.Freeze()
				cl.WaitFailover(victim)
				return victim.Thaw
			case "planned":
				cl.Failover(victim)
			}
			return nil
		}
		return grp
	}
	t.Fatalf("failover: unknown topology %q", topology)
	return nil
}

// kind tells the two front-ends apart.
type kind uint8

const (
	kindHTTP   kind = iota // a request through a stampede.Cache
	kindLoader             // a stampede.Loader.Get call
)

// request is one request's record. Times are since the start of the warm-up.
type request struct {
	start, end time.Duration
	item       int32
	kind       kind
	replica    uint8
	failed     bool
	hit        bool  // served from the store: X-Cache: HIT, or a loader value loaded before the call began
	version    int64 // the item's version in the answer
	load       int32 // the load that produced the answer
}

// purge is one Cache.Purge or Loader.Invalidate, with the version the origin serves from just before it.
type purge struct {
	start, end time.Duration
	item       int32
	kind       kind
	ok         bool // returned nil
	version    int64
}

// load is one run of the origin (handler or load function).
type load struct {
	start   time.Duration
	item    int32
	kind    kind
	version int64
}

// recorder collects a scenario's records.
type recorder struct {
	t0 time.Time

	mu       sync.Mutex
	requests []request // guarded by mu
	purges   []purge   // guarded by mu
	loads    []load    // guarded by mu; a load's id is its index
	stalls   []stall   // guarded by mu
}

// stall is one wake-up of the harness's stall probe.
type stall struct {
	at, late time.Duration
}

func (r *recorder) since() time.Duration { return time.Since(r.t0) }

func (r *recorder) addLoad(l load) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loads = append(r.loads, l)
	return len(r.loads) - 1
}

func (r *recorder) loadStart(id int) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id < 0 || id >= len(r.loads) {
		return 0, false
	}
	return r.loads[id].start, true
}

// origin is the service behind the caches: a version per item and front-end, bumped before each purge.
type origin struct {
	delay    time.Duration
	rec      *recorder
	versions [2][]atomic.Int64 // [kind][item]
}

// serve returns item's answer, recording the load.
func (o *origin) serve(k kind, item int) string {
	v := o.versions[k][item].Load()
	id := o.rec.addLoad(load{start: o.rec.since(), item: int32(item), kind: k, version: v})
	time.Sleep(o.delay)
	return answer(k, item, v, id)
}

// answer is the body (or loader value) for item at version v from load id. Entries in Redis carry it
// as it is, which is how the harness finds the items a master holds.
func answer(k kind, item int, v int64, id int) string {
	p := "h"
	if k == kindLoader {
		p = "l"
	}
	return fmt.Sprintf("%s item=%d ver=%d load=%d", p, item, v, id)
}

var answerRE = regexp.MustCompile(`([hl]) item=(\d+) ver=(\d+) load=(\d+)`)

// parseAnswer returns the version and load id in an answer.
func parseAnswer(s string) (version int64, load int, ok bool) {
	m := answerRE.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, false
	}
	v, err1 := strconv.ParseInt(m[3], 10, 64)
	id, err2 := strconv.Atoi(m[4])
	return v, id, err1 == nil && err2 == nil
}

// host is the Host of every request: the replicas serve one site, so they share its keys.
const host = "failover.test"

// replica is one instance of the service.
type replica struct {
	addr   string
	cache  *stampede.Cache
	loader *stampede.Loader[int, string]
}

func startReplica(t *harnessTB, cfg Config, i int, client redis.UniversalClient, o *origin) *replica {
	var sopts []redisstore.Option
	var copts []stampede.Option
	if cfg.StoreTimeout > 0 {
		sopts = append(sopts, redisstore.WithTimeout(cfg.StoreTimeout))
		copts = append(copts, stampede.WithStoreTimeout(cfg.StoreTimeout))
	}
	if cfg.Batching > 0 {
		sopts = append(sopts, redisstore.WithBatching(cfg.Batching))
	}
	if cfg.Fleet > 0 {
		copts = append(copts, stampede.WithFleetCoalescing(cfg.Fleet))
	}
	if cfg.BreakerFails > 0 {
		copts = append(copts, stampede.WithCircuitBreaker(cfg.BreakerFails, 0))
	}
	store := redisstore.New(client, sopts...)
	t.Cleanup(func() { _ = store.Close() })
	logger := slog.New(slog.DiscardHandler)
	copts = append(copts, stampede.WithName(fmt.Sprintf("replica-%d", i)))
	cache := stampede.New(logger, store, 10*time.Minute, copts...)

	lopts := []stampede.LoaderOption{stampede.WithStore(store), stampede.WithTTL(10 * time.Minute), stampede.WithLogger(logger)}
	for _, c := range copts {
		lopts = append(lopts, c)
	}
	loader := stampede.NewLoader("items", func(_ context.Context, item int) (string, error) {
		return o.serve(kindLoader, item), nil
	}, lopts...)
	t.Cleanup(loader.Close)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /item/{i}", func(w http.ResponseWriter, r *http.Request) {
		item, err := strconv.Atoi(r.PathValue("i"))
		if err != nil || item < 0 || item >= cfg.Items {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, o.serve(kindHTTP, item))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failover: listen: %v", err)
	}
	srv := &http.Server{Handler: cache.Handler(mux), ReadHeaderTimeout: time.Minute}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		cache.Wait()
	})
	return &replica{addr: ln.Addr().String(), cache: cache, loader: loader}
}

// itemRequest is the GET a client sends for item, to replica addr.
func itemRequest(ctx context.Context, addr string, item int) *http.Request {
	r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/item/"+strconv.Itoa(item), nil)
	r.Host = host
	return r
}

func run(ctx context.Context, t *harnessTB, cfg Config, sc Scenario, progress func(string)) Result {
	progress("starting " + sc.Topology)
	grp := startGroup(t, cfg, sc.Topology)
	rec := &recorder{}
	o := &origin{delay: cfg.OriginDelay, rec: rec}
	for k := range o.versions {
		o.versions[k] = make([]atomic.Int64, cfg.Items)
	}
	replicas := make([]*replica, 3)
	for i := range replicas {
		replicas[i] = startReplica(t, cfg, i, grp.newClient(), o)
	}
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}}
	t.Cleanup(httpClient.CloseIdleConnections)

	// Warm-up: every item once through each front-end, so that every key is stored before the fault and
	// the victim's items can be read off it. Its loads are kept: a hit on a warm-up value names one.
	progress("warming up")
	rec.t0 = time.Now()
	warm(ctx, t, cfg, replicas, httpClient)
	affected := affectedItems(t, grp, cfg.Items)

	// The measured load.
	var m marks
	m.begin = rec.since()
	gen := &generator{cfg: cfg, rec: rec, replicas: replicas, client: httpClient, o: o}
	stopLoad := gen.start(ctx)
	progress(fmt.Sprintf("%s: steady load", sc))
	time.Sleep(cfg.Before)
	m.fault = rec.since()
	if sc.Fault != "none" {
		progress(fmt.Sprintf("%s: failing over", sc))
		watchCtx, stopWatch := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var promoted, switched atomic.Int64
		wg.Go(func() { watchPromotion(watchCtx, grp.replicas, rec, &promoted) })
		if grp.sentinels != nil {
			wg.Go(func() { watchSwitch(watchCtx, grp.sentinels, rec, &switched) })
		}
		thaw := grp.fail(sc.Fault)
		m.end = rec.since()
		if thaw != nil {
			thaw()
			m.thawed = rec.since()
		}
		// A promotion seen only after the end (the watcher polls) counts at the end.
		time.Sleep(20 * time.Millisecond)
		stopWatch()
		wg.Wait()
		m.promoted, m.switched = time.Duration(promoted.Load()), time.Duration(switched.Load())
	} else {
		m.end = m.fault
	}
	progress(fmt.Sprintf("%s: after the failover", sc))
	time.Sleep(cfg.After)
	stopLoad()
	m.stop = rec.since()
	for _, r := range replicas {
		r.cache.Wait()
		r.loader.Wait()
	}

	var snaps []stampede.Snapshot
	for _, r := range replicas {
		snaps = append(snaps, r.cache.Snapshot(), r.loader.Snapshot())
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return analyze(sc, m, records{requests: rec.requests, purges: rec.purges, loads: rec.loads, stalls: rec.stalls,
		unsent: int(gen.unsent.Load()), affected: affected}, snaps)
}

// warm asks for every item once through each front-end, spread over the replicas.
func warm(ctx context.Context, t *harnessTB, cfg Config, replicas []*replica, client *http.Client) {
	var wg sync.WaitGroup
	work := make(chan int)
	var failed atomic.Int64
	for range 32 {
		wg.Go(func() {
			for item := range work {
				r := replicas[item%len(replicas)]
				resp, err := client.Do(itemRequest(ctx, r.addr, item))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if _, err := r.loader.Get(ctx, item); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	for i := range cfg.Items {
		work <- i
	}
	close(work)
	wg.Wait()
	for _, r := range replicas {
		r.cache.Wait()
		r.loader.Wait()
	}
	if n := failed.Load(); n > 0 {
		t.Fatalf("failover: %d warm-up requests failed", n)
	}
}

// affectedItems reads the entries the victim holds and returns the items whose keys live there, per
// front-end: the keys whose master fails. Keys do not move between masters during a run (no
// resharding), so what the victim holds after the warm-up is the whole set.
func affectedItems(t *harnessTB, grp *group, items int) [2][]bool {
	var aff [2][]bool
	for k := range aff {
		aff[k] = make([]bool, items)
	}
	if grp.all {
		for k := range aff {
			for i := range aff[k] {
				aff[k][i] = true
			}
		}
		return aff
	}
	c := redis.NewClient(&redis.Options{Addr: grp.victim.Addr()})
	defer c.Close()
	ctx := context.Background()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("failover: KEYS on the victim: %v", err)
	}
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		// Some keys (sets of the tag index, lease locks) are not strings; their errors are expected.
		t.Logf("failover: reading the victim's keys: %v", err)
	}
	for _, cmd := range cmds {
		s, err := cmd.(*redis.StringCmd).Result()
		if err != nil {
			continue
		}
		m := answerRE.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		item, _ := strconv.Atoi(m[2])
		k := kindHTTP
		if m[1] == "l" {
			k = kindLoader
		}
		if item >= 0 && item < items {
			aff[k][item] = true
		}
	}
	return aff
}

// watchPromotion records when one of replicas first says it is a master.
func watchPromotion(ctx context.Context, replicas []*redistest.Server, rec *recorder, at *atomic.Int64) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, s := range replicas {
			if role, err := s.Role(); err == nil && role == "master" {
				at.Store(int64(rec.since()))
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// watchSwitch records when any of the sentinels first publishes +switch-master.
func watchSwitch(ctx context.Context, sentinels []string, rec *recorder, at *atomic.Int64) {
	var wg sync.WaitGroup
	for _, addr := range sentinels {
		wg.Go(func() {
			c := redis.NewSentinelClient(&redis.Options{Addr: addr})
			defer c.Close()
			sub := c.Subscribe(ctx, "+switch-master")
			defer sub.Close()
			if _, err := sub.ReceiveMessage(ctx); err == nil {
				at.CompareAndSwap(0, int64(rec.since()))
			}
		})
	}
	wg.Wait()
}

// generator sends the open-loop load: requests at a fixed rate whatever their latency, and purges.
type generator struct {
	cfg      Config
	rec      *recorder
	replicas []*replica
	client   *http.Client
	o        *origin
	inflight sync.WaitGroup
	running  atomic.Int64 // requests in flight
	unsent   atomic.Int64 // requests not sent because maxInFlight were in flight
}

// maxInFlight bounds the generator's requests in flight: an open-loop load against a stalled service
// would otherwise pile up until the process runs out of file descriptors. The requests it skips are
// counted and reported.
const maxInFlight = 4000

// start starts the load and returns the function that stops it and waits for what is in flight.
func (g *generator) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	rng := rand.New(rand.NewSource(g.cfg.Seed))
	zipf := rand.NewZipf(rng, g.cfg.ZipfS, 1, uint64(g.cfg.Items-1))
	var mu sync.Mutex // guards rng and zipf
	pick := func() (item int, loader bool, replica int) {
		mu.Lock()
		defer mu.Unlock()
		return int(zipf.Uint64()), rng.Float64() < g.cfg.LoaderShare, rng.Intn(len(g.replicas))
	}
	// Requests go out every millisecond or so: as many as the rate says should have gone by now, so a
	// generator that was not scheduled for a while catches up rather than sending less.
	wg.Go(func() {
		start, sent := time.Now(), 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Millisecond):
			}
			due := int(time.Since(start).Seconds() * float64(g.cfg.Rate))
			for ; sent < due; sent++ {
				if g.running.Load() >= maxInFlight {
					g.unsent.Add(1)
					continue
				}
				item, loader, r := pick()
				g.running.Add(1)
				g.inflight.Go(func() {
					defer g.running.Add(-1)
					g.request(item, loader, r)
				})
			}
		}
	})
	// The harness's own stalls: how late a 5 ms sleep wakes up. On a busy machine every latency in the
	// report includes them.
	wg.Go(func() {
		for {
			before := time.Now()
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
			late := time.Since(before) - 5*time.Millisecond
			g.rec.mu.Lock()
			g.rec.stalls = append(g.rec.stalls, stall{at: g.rec.since(), late: late})
			g.rec.mu.Unlock()
		}
	})
	for k, rate := range map[kind]float64{kindHTTP: g.cfg.PurgeRate, kindLoader: g.cfg.InvalidateRate} {
		if rate <= 0 {
			continue
		}
		wg.Go(func() {
			tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				item, _, r := pick()
				g.inflight.Go(func() { g.purge(k, item, r) })
			}
		})
	}
	return func() {
		cancel()
		wg.Wait()
		g.inflight.Wait()
	}
}

// request sends one request and records it.
func (g *generator) request(item int, loader bool, ri int) {
	r := g.replicas[ri]
	rq := request{start: g.rec.since(), item: int32(item), replica: uint8(ri)}
	var body string
	if loader {
		rq.kind = kindLoader
		v, err := r.loader.Get(context.Background(), item)
		rq.failed, body = err != nil, v
	} else {
		resp, err := g.client.Do(itemRequest(context.Background(), r.addr, item))
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			rq.failed = rerr != nil || resp.StatusCode != http.StatusOK
			rq.hit = resp.Header.Get("X-Cache") == "HIT"
			body = string(b)
		} else {
			rq.failed = true
		}
	}
	rq.end = g.rec.since()
	if !rq.failed {
		v, id, ok := parseAnswer(body)
		switch {
		case !ok:
			rq.failed = true
		default:
			rq.version, rq.load = v, int32(id)
			if loader { // a value loaded before the call began came from the store (or a flight joined late)
				if at, ok := g.rec.loadStart(id); ok && at < rq.start {
					rq.hit = true
				}
			}
		}
	}
	g.rec.mu.Lock()
	g.rec.requests = append(g.rec.requests, rq)
	g.rec.mu.Unlock()
}

// purge bumps item's version at the origin, then purges it through replica ri, and records it.
func (g *generator) purge(k kind, item, ri int) {
	r := g.replicas[ri]
	v := g.o.versions[k][item].Add(1)
	p := purge{start: g.rec.since(), item: int32(item), kind: k, version: v}
	var err error
	if k == kindHTTP {
		err = r.cache.Purge(context.Background(), itemRequest(context.Background(), r.addr, item))
	} else {
		err = r.loader.Invalidate(context.Background(), item)
	}
	p.end, p.ok = g.rec.since(), err == nil
	g.rec.mu.Lock()
	g.rec.purges = append(g.rec.purges, p)
	g.rec.mu.Unlock()
}
