package httpapi

// Routes lists "METHOD pattern" of every API route (for the OpenAPI and authorization tests).
func (s *Server) Routes() []string {
	out := make([]string, len(s.routes))
	for i, r := range s.routes {
		out[i] = r.method + " " + r.pattern
	}
	return out
}
