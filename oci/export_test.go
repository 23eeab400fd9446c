package oci

import specs "github.com/opencontainers/runtime-spec/specs-go"

// FastInitRefusal is fastRefusal for the spec, "" when the fast init
// serves it, for tests that must know which init ran.
func (r *Runtime) FastInitRefusal(spec *specs.Spec) string {
	plan, err := planNamespaces(spec.Linux)
	if err != nil {
		return err.Error()
	}
	return r.fastRefusal(spec, plan)
}
