package fakegcp

import (
	"context"
	"fmt"
	"regexp"

	"cloud.google.com/go/container/apiv1/containerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// clusterManager is the GKE API (google.container.v1.ClusterManager): only
// GetCluster, which is all the gcp provider's GKE mode calls; every other
// method answers UNIMPLEMENTED.
type clusterManager struct {
	containerpb.UnimplementedClusterManagerServer
	f *Server
}

// clusterName is the documented form of GetClusterRequest.name.
var clusterName = regexp.MustCompile(`^projects/([^/]+)/locations/([^/]+)/clusters/([^/]+)$`)

// ClusterName returns the resource name of a cluster,
// projects/<project>/locations/<location>/clusters/<cluster>.
func ClusterName(project, location, cluster string) string {
	return "projects/" + project + "/locations/" + location + "/clusters/" + cluster
}

// AddCluster makes GetCluster return c (a copy) for
// projects/<project>/locations/<c.Location>/clusters/<c.Name>, replacing
// any cluster of that name. c.Name is the short name and c.Location the
// region or zone, as in the real resource.
func (f *Server) AddCluster(project string, c *containerpb.Cluster) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.clusters == nil {
		f.clusters = map[string]*containerpb.Cluster{}
	}
	f.clusters[ClusterName(project, c.GetLocation(), c.GetName())] = proto.Clone(c).(*containerpb.Cluster)
}

// RemoveCluster makes GetCluster answer NOT_FOUND for the cluster again.
func (f *Server) RemoveCluster(project, location, cluster string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.clusters, ClusterName(project, location, cluster))
}

// GetCluster returns a cluster added with AddCluster. The name is
// projects/*/locations/*/clusters/*; the deprecated project_id, zone and
// cluster_id fields are accepted when name is empty. A malformed name is
// INVALID_ARGUMENT, an unknown cluster NOT_FOUND.
func (m *clusterManager) GetCluster(_ context.Context, req *containerpb.GetClusterRequest) (*containerpb.Cluster, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetCluster"); err != nil {
		return nil, err
	}
	name := req.GetName()
	if name == "" && req.GetProjectId() != "" && req.GetZone() != "" && req.GetClusterId() != "" {
		name = ClusterName(req.GetProjectId(), req.GetZone(), req.GetClusterId())
	}
	if !clusterName.MatchString(name) {
		return nil, status.Errorf(codes.InvalidArgument, "Invalid value for field 'name': %q. Must be of the form projects/*/locations/*/clusters/*.", name)
	}
	c, ok := f.clusters[name]
	if !ok {
		return nil, status.Error(codes.NotFound, fmt.Sprintf("Not found: %s.", name))
	}
	return proto.Clone(c).(*containerpb.Cluster), nil
}
