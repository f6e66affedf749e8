package fakeaws

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// EKS speaks REST-JSON: DescribeCluster is GET /clusters/{name}, answered
// with {"cluster": {...}}; errors carry their code in the x-amzn-ErrorType
// header (which the SDK reads first) and {"message": ...} in the body.
// Only DescribeCluster is served: the aws provider in mode eks needs
// nothing else from EKS. Clusters exist once AddEKSCluster registers them.

// EKSCluster is an EKS cluster the fake describes.
type EKSCluster struct {
	Name string
	// Endpoint is the Kubernetes API server's URL (https://...).
	Endpoint string
	// CAPEM is the PEM certificate of the CA that signed the API
	// server's serving certificate; the fake returns it base64-encoded
	// in certificateAuthority.data, as EKS does.
	CAPEM []byte
	// Status is ACTIVE (default), CREATING, UPDATING, DELETING, FAILED or
	// PENDING. As on EKS, a CREATING or PENDING cluster has no endpoint
	// nor certificate authority yet.
	Status string
	// Version is the Kubernetes minor version (default "1.37").
	Version string
	// Tags are the cluster's tags.
	Tags map[string]string
}

type eksCluster struct {
	EKSCluster
	created time.Time
}

// AddEKSCluster registers (or replaces) an EKS cluster.
func (f *Fake) AddEKSCluster(c EKSCluster) {
	if c.Status == "" {
		c.Status = "ACTIVE"
	}
	if c.Version == "" {
		c.Version = "1.37"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.eks == nil {
		f.eks = map[string]*eksCluster{}
	}
	f.eks[c.Name] = &eksCluster{EKSCluster: c, created: f.now()}
}

// serveEKS answers a request under /clusters/.
func (f *Fake) serveEKS(w http.ResponseWriter, r *http.Request, throttle bool) {
	name, sub, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/clusters/"), "/")
	if r.Method != http.MethodGet || sub != "" || name == "" {
		f.count("eks.unknown")
		writeRESTError(w, errf(http.StatusNotFound, "UnknownOperationException", "the fake serves only GET /clusters/{name}, not %s %s", r.Method, r.URL.Path), nil)
		return
	}
	f.count("eks.DescribeCluster")
	if throttle {
		writeRESTError(w, errf(http.StatusTooManyRequests, "ThrottlingException", "Rate exceeded"), nil)
		return
	}
	f.mu.Lock()
	c := f.eks[name]
	var out map[string]any
	if c != nil {
		out = f.eksClusterJSON(c)
	}
	f.mu.Unlock()
	if c == nil {
		writeRESTError(w, errf(http.StatusNotFound, "ResourceNotFoundException", "No cluster found for name: %s.", name),
			map[string]any{"clusterName": name})
		return
	}
	b, _ := json.Marshal(map[string]any{"cluster": out})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Requestid", "fake-request")
	_, _ = w.Write(b)
}

// eksClusterJSON is the Cluster object of the EKS API reference. f.mu is
// held.
func (f *Fake) eksClusterJSON(c *eksCluster) map[string]any {
	sum := sha256.Sum256([]byte(c.Name))
	id := strings.ToUpper(hex.EncodeToString(sum[:16]))
	tags := map[string]string{}
	for k, v := range c.Tags {
		tags[k] = v
	}
	out := map[string]any{
		"name":      c.Name,
		"arn":       f.arn("eks", "cluster/"+c.Name),
		"createdAt": epoch(c.created),
		"version":   c.Version,
		"roleArn":   fmt.Sprintf("arn:aws:iam::%s:role/eks-cluster-role", f.opts.Account),
		"resourcesVpcConfig": map[string]any{
			"subnetIds": []string{"subnet-0fb75d2d8401716e7", "subnet-02184492f67a3d0f9"}, "securityGroupIds": []string{},
			"clusterSecurityGroupId": "sg-01c84d09d70f39a7f", "vpcId": "vpc-0012b8e1cc0abb17d",
			"endpointPublicAccess": true, "endpointPrivateAccess": false, "publicAccessCidrs": []string{"0.0.0.0/0"},
		},
		"kubernetesNetworkConfig": map[string]any{"serviceIpv4Cidr": "10.100.0.0/16", "ipFamily": "ipv4"},
		"logging":                 map[string]any{"clusterLogging": []any{map[string]any{"types": []string{"api", "audit", "authenticator", "controllerManager", "scheduler"}, "enabled": false}}},
		"identity":                map[string]any{"oidc": map[string]any{"issuer": fmt.Sprintf("https://oidc.eks.%s.amazonaws.com/id/%s", f.opts.Region, id)}},
		"status":                  c.Status,
		"platformVersion":         "eks.1",
		"tags":                    tags,
		"health":                  map[string]any{"issues": []any{}},
		"accessConfig":            map[string]any{"authenticationMode": "API_AND_CONFIG_MAP"},
	}
	if c.Status != "CREATING" && c.Status != "PENDING" {
		out["endpoint"] = c.Endpoint
		out["certificateAuthority"] = map[string]any{"data": base64.StdEncoding.EncodeToString(c.CAPEM)}
	}
	return out
}

// writeRESTError writes an error the way REST-JSON services do: the code
// in x-amzn-ErrorType, the message (and the error's members) in the body.
func writeRESTError(w http.ResponseWriter, e *apiError, members map[string]any) {
	body := map[string]any{"message": e.message}
	for k, v := range members {
		body[k] = v
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", e.code)
	w.Header().Set("X-Amzn-Requestid", "fake-request")
	w.WriteHeader(e.status)
	_, _ = w.Write(b)
}
