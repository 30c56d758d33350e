// A CRD-only Kubernetes API server for tests: k8s.io/apiextensions-apiserver (the part of
// kube-apiserver that serves CustomResourceDefinitions and custom resources) over etcd, built by
// scripts/k8s-apiserver.sh from Debian's packaged Go sources. It differs from the upstream
// standalone main in three ways, each needed for a client to work against it alone:
//   - discovery (/api, /apis) is on: the standalone server turns it off, and clients need it;
//   - delegated authentication and authorization need no core API: client certificates are
//     checked against --client-ca-file and the system:masters group is always allowed;
//   - the admission plugins that read the core API (namespaces, webhooks, admission policies)
//     are off, so requests are not held waiting for informers that never sync.
package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/component-base/cli"
)

func main() {
	ctx := genericapiserver.SetupSignalContext()
	o := options.NewCustomResourceDefinitionsServerOptions(os.Stdout, os.Stderr)
	o.RecommendedOptions.Authentication.RemoteKubeConfigFileOptional = true
	o.RecommendedOptions.Authorization.RemoteKubeConfigFileOptional = true
	o.RecommendedOptions.Admission.DisablePlugins = []string{
		"NamespaceLifecycle",
		"MutatingAdmissionWebhook",
		"ValidatingAdmissionWebhook",
		"ValidatingAdmissionPolicy",
		"MutatingAdmissionPolicy",
	}
	cmd := &cobra.Command{
		Use:   "roost-k8s-apiserver",
		Short: "A CRD-only Kubernetes API server for tests",
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return o.ServerRunOptions.ComponentGlobalsRegistry.Set()
		},
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return run(c.Context(), o)
		},
	}
	cmd.SetContext(ctx)
	o.AddFlags(cmd.Flags())
	os.Exit(cli.Run(cmd))
}

func run(ctx context.Context, o *options.CustomResourceDefinitionsServerOptions) error {
	config, err := o.Config()
	if err != nil {
		return err
	}
	completed := config.Complete()
	completed.GenericConfig.EnableDiscovery = true
	server, err := completed.New(genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}
	return server.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}
