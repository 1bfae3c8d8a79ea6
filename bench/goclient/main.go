// Command goclient is the benchmark's Go anchor: containerd's own Go client in
// one long-lived process, driven by the Python runner over stdin/stdout.
//
// The runner writes one JSON request per line; this program answers each with
// one JSON line, timing the operation itself (so pipe latency is not counted)
// and counting the gRPC calls it made with a client interceptor. Built in
// GOPATH mode against Debian's golang-github-containerd-containerd-dev.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/leases"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/pkg/dialer"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc"
)

// groupAnnotation asks containerd 1.6's runc v2 shim to serve, in one shim
// process, every container whose spec has the same value (it reads the spec's
// annotations, not the container's labels).
const groupAnnotation = "io.containerd.runc.v2.group"

type request struct {
	Op          string   `json:"op"`
	ID          string   `json:"id"`
	ExecID      string   `json:"exec_id"`
	Rootfs      string   `json:"rootfs"`
	Args        []string `json:"args"`
	N           int      `json:"n"`
	Concurrency int      `json:"concurrency"`
	Group       string   `json:"group"`
	Lease       bool     `json:"lease"`
	Image       string   `json:"image"`
}

type reply struct {
	OK        bool           `json:"ok"`
	Error     string         `json:"error,omitempty"`
	Seconds   float64        `json:"seconds"`
	Latencies []float64      `json:"latencies,omitempty"`
	Calls     map[string]int `json:"calls"`
	CPU       float64        `json:"cpu"`
	Version   string         `json:"version,omitempty"`
}

// callCounter counts every gRPC call by method, unary and streaming alike.
type callCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounter) add(method string) {
	c.mu.Lock()
	c.calls[method]++
	c.mu.Unlock()
}

func (c *callCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	taken := c.calls
	c.calls = map[string]int{}
	return taken
}

func (c *callCounter) unary(ctx context.Context, method string, req, resp interface{},
	cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c.add(method)
	return invoker(ctx, method, req, resp, cc, opts...)
}

func (c *callCounter) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn,
	method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	c.add(method)
	return streamer(ctx, desc, cc, method, opts...)
}

// longRunning is a container kept alive for exec, pause and metrics.
type longRunning struct {
	container containerd.Container
	task      containerd.Task
	process   specs.Process
}

type bench struct {
	client  *containerd.Client
	counter *callCounter
	long    map[string]*longRunning
	base    context.Context // carries the namespace, which spec generation reads
	lease   context.Context // base, plus one long-lived lease once made
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
}

func (b *bench) context(req request) context.Context {
	if req.Lease && b.lease != nil {
		return b.lease
	}
	return b.base
}

// specOpts is containerd's default spec on the rootfs, running args, in a shim group if asked.
func specOpts(rootfs string, args []string, group string) containerd.NewContainerOpts {
	opts := []oci.SpecOpts{oci.WithRootFSPath(rootfs), oci.WithProcessArgs(args...)}
	if group != "" {
		opts = append(opts, oci.WithAnnotations(map[string]string{groupAnnotation: group}))
	}
	return containerd.WithNewSpec(opts...)
}

// lifecycle is create, start, wait for exit, delete: what a caller of the client writes.
func (b *bench) lifecycle(ctx context.Context, id, rootfs string, args []string, group string) error {
	return b.runOnce(ctx, id, nil, specOpts(rootfs, args, group))
}

// imageLifecycle is lifecycle from an image, as a Go caller writes it: the image's
// config for the spec, a new writable snapshot on its top layer, and the
// snapshot removed with the container.
func (b *bench) imageLifecycle(ctx context.Context, id, ref string, args []string) error {
	image, err := b.client.GetImage(ctx, ref)
	if err != nil {
		return fmt.Errorf("get image %s: %w", ref, err)
	}
	return b.runOnce(ctx, id, []containerd.DeleteOpts{containerd.WithSnapshotCleanup},
		containerd.WithImage(image),
		containerd.WithNewSnapshot(id, image),
		containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs(args...)))
}

// runOnce creates the container, runs its task to its exit, and deletes the task and
// then the container (with deleteOpts): the body both lifecycles share.
func (b *bench) runOnce(ctx context.Context, id string, deleteOpts []containerd.DeleteOpts,
	opts ...containerd.NewContainerOpts) (err error) {
	container, err := b.client.NewContainer(ctx, id, opts...)
	if err != nil {
		return fmt.Errorf("create %s: %w", id, err)
	}
	defer func() {
		if derr := container.Delete(ctx, deleteOpts...); derr != nil && err == nil {
			err = fmt.Errorf("delete %s: %w", id, derr)
		}
	}()
	task, err := container.NewTask(ctx, cio.NullIO)
	if err != nil {
		return fmt.Errorf("new task %s: %w", id, err)
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		task.Delete(ctx, containerd.WithProcessKill)
		return fmt.Errorf("wait %s: %w", id, err)
	}
	if err := task.Start(ctx); err != nil {
		task.Delete(ctx, containerd.WithProcessKill)
		return fmt.Errorf("start %s: %w", id, err)
	}
	<-exited
	if _, err := task.Delete(ctx); err != nil {
		return fmt.Errorf("delete task %s: %w", id, err)
	}
	return nil
}

func (b *bench) startLong(ctx context.Context, req request) error {
	container, err := b.client.NewContainer(ctx, req.ID, specOpts(req.Rootfs, req.Args, req.Group))
	if err != nil {
		return err
	}
	spec, err := container.Spec(ctx)
	if err != nil {
		container.Delete(ctx)
		return err
	}
	task, err := container.NewTask(ctx, cio.NullIO)
	if err != nil {
		container.Delete(ctx)
		return err
	}
	if err := task.Start(ctx); err != nil {
		task.Delete(ctx, containerd.WithProcessKill)
		container.Delete(ctx)
		return err
	}
	b.long[req.ID] = &longRunning{container: container, task: task, process: *spec.Process}
	return nil
}

func (b *bench) stopLong(ctx context.Context, id string) error {
	long, ok := b.long[id]
	if !ok {
		return fmt.Errorf("no long-running container %s", id)
	}
	delete(b.long, id)
	if _, err := long.task.Delete(ctx, containerd.WithProcessKill); err != nil {
		return err
	}
	return long.container.Delete(ctx)
}

func (b *bench) exec(ctx context.Context, id, execID string, args []string) error {
	long, ok := b.long[id]
	if !ok {
		return fmt.Errorf("no long-running container %s", id)
	}
	spec := long.process
	spec.Args = args
	process, err := long.task.Exec(ctx, execID, &spec, cio.NullIO)
	if err != nil {
		return err
	}
	exited, err := process.Wait(ctx)
	if err != nil {
		process.Delete(ctx)
		return err
	}
	if err := process.Start(ctx); err != nil {
		process.Delete(ctx)
		return err
	}
	<-exited
	_, err = process.Delete(ctx)
	return err
}

func (b *bench) pauseResume(ctx context.Context, id string) error {
	long, ok := b.long[id]
	if !ok {
		return fmt.Errorf("no long-running container %s", id)
	}
	if err := long.task.Pause(ctx); err != nil {
		return err
	}
	return long.task.Resume(ctx)
}

func (b *bench) metrics(ctx context.Context, id string) error {
	long, ok := b.long[id]
	if !ok {
		return fmt.Errorf("no long-running container %s", id)
	}
	_, err := long.task.Metrics(ctx)
	return err
}

// throughput runs req.N lifecycles, req.Concurrency at a time; latencies are per lifecycle.
func (b *bench) throughput(ctx context.Context, req request) ([]float64, error) {
	latencies := make([]float64, req.N)
	errs := make(chan error, req.N)
	slots := make(chan struct{}, req.Concurrency)
	var wg sync.WaitGroup
	for i := 0; i < req.N; i++ {
		slots <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-slots }()
			started := time.Now()
			if err := b.lifecycle(ctx, fmt.Sprintf("%s-%d", req.ID, i), req.Rootfs, req.Args, req.Group); err != nil {
				errs <- err
			}
			latencies[i] = time.Since(started).Seconds()
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return latencies, err
	}
	return latencies, nil
}

func (b *bench) handle(req request) reply {
	ctx := b.context(req)
	var latencies []float64
	var version string
	var err error
	b.counter.take()
	cpu := cpuSeconds()
	started := time.Now()
	switch req.Op {
	case "version":
		var v containerd.Version
		v, err = b.client.Version(ctx)
		version = v.Version
	case "lifecycle":
		err = b.lifecycle(ctx, req.ID, req.Rootfs, req.Args, req.Group)
	case "lifecycles":
		// req.N sequential lifecycles, for the client's CPU time per lifecycle.
		latencies = make([]float64, 0, req.N)
		for i := 0; i < req.N && err == nil; i++ {
			one := time.Now()
			err = b.lifecycle(ctx, fmt.Sprintf("%s-%d", req.ID, i), req.Rootfs, req.Args, req.Group)
			latencies = append(latencies, time.Since(one).Seconds())
		}
	case "image_lifecycle":
		err = b.imageLifecycle(ctx, req.ID, req.Image, req.Args)
	case "throughput":
		latencies, err = b.throughput(ctx, req)
	case "start_long":
		err = b.startLong(ctx, req)
	case "stop_long":
		err = b.stopLong(ctx, req.ID)
	case "exec":
		err = b.exec(ctx, req.ID, req.ExecID, req.Args)
	case "pause_resume":
		err = b.pauseResume(ctx, req.ID)
	case "metrics":
		err = b.metrics(ctx, req.ID)
	case "lease":
		// One long-lived lease, reused by requests that ask for it: the client
		// then skips its Leases.Create and Leases.Delete around each container.
		var lease leases.Lease
		lease, err = b.client.LeasesService().Create(b.base, leases.WithRandomID())
		if err == nil {
			b.lease = leases.WithLease(b.base, lease.ID)
		}
	default:
		err = fmt.Errorf("unknown op %q", req.Op)
	}
	elapsed := time.Since(started).Seconds()
	out := reply{
		OK:        err == nil,
		Seconds:   elapsed,
		Latencies: latencies,
		Calls:     b.counter.take(),
		CPU:       cpuSeconds() - cpu,
		Version:   version,
	}
	if err != nil {
		out.Error = err.Error()
	}
	return out
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: goclient SOCKET NAMESPACE")
		os.Exit(2)
	}
	counter := &callCounter{calls: map[string]int{}}
	client, err := containerd.New(os.Args[1],
		containerd.WithDefaultNamespace(os.Args[2]),
		// The client's own dial options, plus the counting interceptors.
		containerd.WithDialOpts([]grpc.DialOption{
			grpc.WithBlock(),
			grpc.WithInsecure(),
			grpc.WithContextDialer(dialer.ContextDialer),
			grpc.WithChainUnaryInterceptor(counter.unary),
			grpc.WithChainStreamInterceptor(counter.stream),
		}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "goclient:", err)
		os.Exit(1)
	}
	b := &bench{client: client, counter: counter, long: map[string]*longRunning{},
		base: namespaces.WithNamespace(context.Background(), os.Args[2])}
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	encoder := json.NewEncoder(os.Stdout)
	for scanner.Scan() {
		var req request
		if err := json.Unmarshal(scanner.Bytes(), &req); err != nil {
			encoder.Encode(reply{Error: "bad request: " + err.Error()})
			continue
		}
		if req.Op == "quit" {
			break
		}
		encoder.Encode(b.handle(req))
	}
	// Whatever the runner did not stop is removed on the way out.
	ids := make([]string, 0, len(b.long))
	for id := range b.long {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		b.stopLong(b.base, id)
	}
	client.Close()
}
