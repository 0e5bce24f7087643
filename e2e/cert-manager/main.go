// cert-manager's controller for the e2e test bed (TEST TOOLING, not product).
//
// Why not cert-manager's own cmd/controller: it is a nested Go module that cert-manager never
// tags, so the Go module proxy does not serve it. The root module github.com/cert-manager/cert-manager
// (pinned in e2e/scripts/versions.env) holds every controller; each registers itself in its
// package's init(), exactly as cmd/controller links them. This main links the ones a CA chain
// needs (Issuer and ClusterIssuer readiness, the Certificate state machine, the approver, the self-signed and CA
// signers), builds their context with cert-manager's own ContextFactory, and runs them under a
// Lease like upstream's leader election.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// The controllers (each registers itself in controllerpkg.Known()).
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	// The issuer types the issuers controller can set up.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	namespace := flag.String("namespace", "", "namespace to watch (empty: all)")
	leNamespace := flag.String("leader-election-namespace", "kube-system", "namespace of the leader election Lease")
	// Upstream defaults are 1h and 32h; a test waits minutes, not hours, after a failed request.
	minBackoff := flag.Duration("certificate-request-minimum-backoff-duration", 10*time.Second, "first retry delay of a failed CertificateRequest")
	maxBackoff := flag.Duration("certificate-request-maximum-backoff-duration", 2*time.Minute, "longest retry delay of a failed CertificateRequest")
	clusterResourceNamespace := flag.String("cluster-resource-namespace", "kube-system", "namespace of the Secrets ClusterIssuers read")
	list := flag.Bool("list-controllers", false, "print the controllers linked in and exit")
	klog.InitFlags(nil) // -v=N
	flag.Parse()

	names := make([]string, 0, len(controllerpkg.Known()))
	for n := range controllerpkg.Known() {
		names = append(names, n)
	}
	sort.Strings(names)
	if *list {
		fmt.Printf("cert-manager controllers: %v\n", names)
		return
	}

	logf.InitLogs()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, "controller")
	log := logf.FromContext(ctx)

	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig: *kubeconfig,
		Namespace:  *namespace,
		IssuerOptions: controllerpkg.IssuerOptions{
			ClusterResourceNamespace: *clusterResourceNamespace,
		},
		CertificateOptions: controllerpkg.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: *minBackoff,
			CertificateRequestMaximumBackoffDuration: *maxBackoff,
		},
	})
	if err != nil {
		fail(log.Error, err, "building the controller context")
	}

	run := func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, n := range names {
			iface, err := controllerpkg.Known()[n](factory)
			if err != nil {
				fail(log.Error, err, "constructing controller "+n)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				log.Info("starting controller", "controller", n)
				if err := iface.Run(5, ctx); err != nil {
					fail(log.Error, err, "running controller "+n)
				}
			}()
		}
		// Every Context the factory builds shares these informer factories: start them once
		// every controller has asked for its informers.
		shared, err := factory.Build()
		if err != nil {
			fail(log.Error, err, "building the shared context")
		}
		shared.KubeSharedInformerFactory.Start(ctx.Done())
		shared.SharedInformerFactory.Start(ctx.Done())
		shared.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
		wg.Wait()
		log.Info("control loops exited")
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fail(log.Error, err, "reading the kubeconfig")
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fail(log.Error, err, "building the leader election client")
	}
	host, _ := os.Hostname()
	lock := &resourcelock.LeaseLock{
		// The Lease upstream's controller takes.
		LeaseMeta:  metav1.ObjectMeta{Namespace: *leNamespace, Name: "cert-manager-controller"},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: fmt.Sprintf("%s-%d", host, os.Getpid())},
	}
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   60 * time.Second,
		RenewDeadline:   40 * time.Second,
		RetryPeriod:     15 * time.Second,
		ReleaseOnCancel: true,
		Name:            "cert-manager-controller",
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: run,
			OnStoppedLeading: func() {
				if ctx.Err() == nil {
					log.Info("leader election lost")
					os.Exit(1)
				}
			},
		},
	})
}

func fail(logError func(error, string, ...any), err error, what string) {
	logError(err, what)
	os.Exit(1)
}
