// Command coredns is the one-node test cluster's DNS: CoreDNS with only the plugins it needs,
// so that pods resolve Service names (kubernetes.default.svc, which kopf's in-cluster login
// uses) as on any cluster. It answers cluster.local from the API server and nothing else: no
// forward plugin, so no query ever leaves the cluster's network namespace.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
)

func init() {
	// The plugin chain, in order; dnsserver.Directives decides which plugins a Corefile may use.
	dnsserver.Directives = []string{"errors", "kubernetes"}
}

func main() {
	coremain.Run()
}
