package workload

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseMilliCPU parses a CPU quantity ("250m", "0.5", "2") into thousandths
// of a core. The empty string is 0.
func ParseMilliCPU(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if m, ok := strings.CutSuffix(s, "m"); ok {
		v, err := strconv.ParseInt(m, 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("invalid CPU quantity %q", s)
		}
		return v, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f > 1e6 {
		return 0, fmt.Errorf("invalid CPU quantity %q (want cores like \"0.5\" or millicores like \"500m\")", s)
	}
	return int64(math.Round(f * 1000)), nil
}

var byteSuffixes = []struct {
	suffix string
	mult   int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
}

// ParseBytes parses a memory quantity ("128Mi", "1G", "1048576"). The empty
// string is 0.
func ParseBytes(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	num, mult := s, int64(1)
	for _, b := range byteSuffixes {
		if n, ok := strings.CutSuffix(s, b.suffix); ok {
			num, mult = n, b.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("invalid memory quantity %q (want bytes like \"256Mi\" or \"1G\")", s)
	}
	if v > math.MaxInt64/mult {
		return 0, fmt.Errorf("memory quantity %q is too large", s)
	}
	return v * mult, nil
}
