package azure

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azappconfig"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

const (
	// SecretConfigPrefix marks a config key whose value is a secret: it
	// is stored in Key Vault, referenced from App Configuration, and
	// reaches the container as a secure environment variable named
	// without the prefix.
	SecretConfigPrefix = "secret."
	// keyVaultRefContentType is App Configuration's content type of a
	// Key Vault reference.
	keyVaultRefContentType = "application/vnd.microsoft.appconfig.keyvaultref+json;charset=utf-8"
	// configKeyPrefix starts every App Configuration key alphaswarm
	// writes: "alphaswarm/<service>/<key>", label <target>.
	configKeyPrefix = "alphaswarm/"
)

var (
	kvName    = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
	kvNameBad = regexp.MustCompile(`[^0-9A-Za-z-]`)
)

func configEnvName(key string) string { return strings.TrimPrefix(key, SecretConfigPrefix) }

func settingKey(service, key string) string { return configKeyPrefix + service + "/" + key }

// secretName is the Key Vault secret of a secret config key:
// "alphaswarm-<target>-<service>-<key>", characters other than letters,
// digits and '-' replaced by '-'.
func (p *Provider) secretName(service, key string) string {
	return kvNameBad.ReplaceAllString("alphaswarm-"+p.target+"-"+service+"-"+configEnvName(key), "-")
}

// Per-value limits of the config stores (see checkConfig).
const (
	maxKeyValueChars = 10000
	maxSecretBytes   = 25000
)

// checkConfig validates config against what the target can store, so
// that nothing is written when a value would be refused halfway.
func (p *Provider) checkConfig(service string, config map[string]string) error {
	if errs := workload.ValidateConfig("config", config); len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	var errs []workload.FieldError
	names := map[string]string{}
	envs := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(config)) {
		env := configEnvName(k)
		if other, dup := envs[env]; dup {
			errs = append(errs, workload.FieldError{Path: "config." + k, Message: "names the same environment variable as " + other})
		}
		envs[env] = k
		if !strings.HasPrefix(k, SecretConfigPrefix) {
			// App Configuration: "a combined size limit of 10,000
			// characters on a key-value", key, value and attributes
			// (here the label, the target) together ("Keys and values",
			// learn.microsoft.com).
			if n := utf8.RuneCountInString(settingKey(service, k)) + utf8.RuneCountInString(config[k]) + utf8.RuneCountInString(p.target); n > maxKeyValueChars {
				errs = append(errs, workload.FieldError{Path: "config." + k, Message: fmt.Sprintf("key, value and label take %d characters; an App Configuration key-value holds at most %d", n, maxKeyValueChars)})
			}
			continue
		}
		// Key Vault: "Secret value size: 25k bytes" (Azure Key Vault
		// service limits); 25,000, the lower reading.
		if n := len(config[k]); n > maxSecretBytes {
			errs = append(errs, workload.FieldError{Path: "config." + k, Message: fmt.Sprintf("value is %d bytes; a Key Vault secret holds at most 25k (%d bytes)", n, maxSecretBytes)})
		}
		if p.secrets == nil {
			errs = append(errs, workload.FieldError{Path: "config." + k, Message: "secret keys are stored in Key Vault: set the target's keyVaultURL option"})
			continue
		}
		n := p.secretName(service, k)
		if len(n) > 127 {
			errs = append(errs, workload.FieldError{Path: "config." + k, Message: "too long for a Key Vault secret name (127)"})
		}
		if other, dup := names[n]; dup {
			errs = append(errs, workload.FieldError{Path: "config." + k, Message: "maps to the same Key Vault secret as " + other})
		}
		names[n] = k
	}
	// The config's env var names are kept in one tag (tagConfigKeys).
	if n := len(strings.Join(slices.Sorted(maps.Keys(envs)), ",")); n > maxTagValue {
		errs = append(errs, workload.FieldError{Path: "config", Message: fmt.Sprintf("the key names take %d characters; ACI groups record them in one Azure tag of at most %d", n, maxTagValue)})
	}
	if len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	return nil
}

// storedKeys lists the service's keys in App Configuration.
func (p *Provider) storedKeys(ctx context.Context, service string) ([]azappconfig.Setting, error) {
	pager := p.appconfig.NewListSettingsPager(azappconfig.SettingSelector{
		KeyFilter: to.Ptr(configKeyPrefix + service + "/*"), LabelFilter: to.Ptr(p.target),
	}, nil)
	var out []azappconfig.Setting
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, mapErr("list App Configuration settings of "+service, err)
		}
		out = append(out, page.Settings...)
	}
	return out, nil
}

// writeConfig replaces the service's config in the store: plain keys as
// App Configuration settings, secret keys as Key Vault secrets referenced
// from App Configuration. changed reports whether anything was written
// before an error.
func (p *Provider) writeConfig(ctx context.Context, service string, config map[string]string) (changed bool, err error) {
	old, err := p.storedKeys(ctx, service)
	if err != nil {
		return false, err
	}
	fail := func(err error) (bool, error) {
		if changed {
			return true, provider.AfterChange(Name, err, changesApplied)
		}
		return false, err
	}
	prefix := configKeyPrefix + service + "/"
	oldByKey := map[string]azappconfig.Setting{}
	for _, s := range old {
		oldByKey[strings.TrimPrefix(str(s.Key), prefix)] = s
	}
	for _, k := range slices.Sorted(maps.Keys(config)) {
		value, contentType := config[k], ""
		if strings.HasPrefix(k, SecretConfigPrefix) {
			name := p.secretName(service, k)
			// An unchanged value keeps its version, so that the
			// reference, and the config digest, stay the same.
			id, err := p.currentSecret(ctx, name, config[k])
			if err != nil {
				return fail(err)
			}
			if id == "" {
				resp, err := p.secrets.SetSecret(ctx, name, azsecrets.SetSecretParameters{
					Value: to.Ptr(config[k]),
					Tags:  map[string]*string{tagService: to.Ptr(service), tagTarget: to.Ptr(p.target)},
				}, nil)
				if err != nil {
					return fail(mapErr("set Key Vault secret "+name, err))
				}
				changed = true
				if resp.ID == nil {
					return fail(provider.Errorf(Name, workload.ProviderError, "%s: %s", "set Key Vault secret "+name, "no secret id in the response"))
				}
				id = string(*resp.ID)
			}
			ref, _ := json.Marshal(map[string]string{"uri": id})
			value, contentType = string(ref), keyVaultRefContentType
		}
		if o, ok := oldByKey[k]; ok && str(o.Value) == value && str(o.ContentType) == contentType {
			continue // unchanged
		}
		opts := &azappconfig.SetSettingOptions{Label: to.Ptr(p.target)}
		if contentType != "" {
			opts.ContentType = to.Ptr(contentType)
		}
		if _, err := p.appconfig.SetSetting(ctx, settingKey(service, k), to.Ptr(value), opts); err != nil {
			return fail(mapErr("set App Configuration key "+settingKey(service, k), err))
		}
		changed = true
	}
	for _, s := range old {
		k := strings.TrimPrefix(str(s.Key), configKeyPrefix+service+"/")
		if _, keep := config[k]; keep {
			continue
		}
		if _, err := p.appconfig.DeleteSetting(ctx, str(s.Key), &azappconfig.DeleteSettingOptions{Label: to.Ptr(p.target)}); err != nil {
			return fail(mapErr("delete App Configuration key "+str(s.Key), err))
		}
		changed = true
		if uri, ok := keyVaultRef(s); ok && p.secrets != nil {
			// The Key Vault secret goes too: its referenced version is
			// disabled (not deleted: a soft-deleted name could not be
			// set again until purged).
			id := azsecrets.ID(uri)
			_, err := p.secrets.UpdateSecretProperties(ctx, id.Name(), id.Version(), azsecrets.UpdateSecretPropertiesParameters{
				SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)}}, nil)
			if err != nil && !isNotFound(err) {
				return fail(mapErr("disable Key Vault secret "+id.Name(), err))
			}
		}
	}
	return changed, nil
}

// keyVaultRef returns the secret URI of a Key Vault reference setting.
func keyVaultRef(s azappconfig.Setting) (string, bool) {
	if !strings.HasPrefix(str(s.ContentType), "application/vnd.microsoft.appconfig.keyvaultref+json") {
		return "", false
	}
	var ref struct {
		URI string `json:"uri"`
	}
	if err := json.Unmarshal([]byte(str(s.Value)), &ref); err != nil || ref.URI == "" {
		return "", false
	}
	return ref.URI, true
}

// currentSecret returns the id of the current version of a Key Vault
// secret when it is enabled and holds value, else "". The values are
// compared, never logged.
func (p *Provider) currentSecret(ctx context.Context, name, value string) (string, error) {
	resp, err := p.secrets.GetSecret(ctx, name, "", nil)
	var re *azcore.ResponseError
	if isNotFound(err) || (errors.As(err, &re) && re.StatusCode == http.StatusForbidden && strings.Contains(re.Error(), "SecretDisabled")) {
		// No secret yet, or its current version disabled (a removed
		// key): set a new version.
		return "", nil
	}
	if err != nil {
		return "", mapErr("get Key Vault secret "+name, err)
	}
	if resp.ID == nil || resp.Value == nil || (resp.Attributes != nil && resp.Attributes.Enabled != nil && !*resp.Attributes.Enabled) {
		return "", nil
	}
	if subtle.ConstantTimeCompare([]byte(*resp.Value), []byte(value)) != 1 {
		return "", nil
	}
	return string(*resp.ID), nil
}

// readConfig reads the service's config from the store, resolving Key
// Vault references. Without an App Configuration store it returns nil.
func (p *Provider) readConfig(ctx context.Context, service string) ([]configEntry, error) {
	if p.appconfig == nil {
		return nil, nil
	}
	settings, err := p.storedKeys(ctx, service)
	if err != nil {
		return nil, err
	}
	var out []configEntry
	for _, s := range settings {
		e, uri, err := p.entryOf(service, s)
		if err != nil {
			return nil, err
		}
		if uri != "" {
			id := azsecrets.ID(uri)
			resp, err := p.secrets.GetSecret(ctx, id.Name(), id.Version(), nil)
			if err != nil {
				return nil, mapErr("get Key Vault secret "+id.Name(), err)
			}
			e.value = str(resp.Value)
			p.creds.Register(e.value)
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b configEntry) int { return strings.Compare(a.env, b.env) })
	return out, nil
}

// entryOf reads one App Configuration setting of the service as a config
// entry without resolving it: a Key Vault reference comes back secure,
// with its secret URI (uri) as version and no value yet.
func (p *Provider) entryOf(service string, s azappconfig.Setting) (e configEntry, uri string, err error) {
	k := strings.TrimPrefix(str(s.Key), configKeyPrefix+service+"/")
	e = configEntry{env: configEnvName(k), value: str(s.Value), version: str(s.Value)}
	if !strings.HasPrefix(str(s.ContentType), "application/vnd.microsoft.appconfig.keyvaultref+json") {
		return e, "", nil
	}
	var ref struct {
		URI string `json:"uri"`
	}
	if err := json.Unmarshal([]byte(str(s.Value)), &ref); err != nil || ref.URI == "" {
		return e, "", provider.Wrap(Name, as(workload.ProviderError, "malformed Key Vault reference"), err, "read config "+k)
	}
	if p.secrets == nil {
		return e, "", provider.Errorf(Name, workload.InvalidArgument, "config %s is a Key Vault reference but the target has no keyVaultURL", k)
	}
	e.value, e.secure, e.version = "", true, ref.URI
	return e, ref.URI, nil
}

// ApplyConfig implements provider.Provider: the config replaces the
// service's keys in App Configuration (and Key Vault for secret keys),
// then the service's running container groups are recreated with the new
// values one at a time, because ACI environment variables are immutable.
func (p *Provider) ApplyConfig(ctx context.Context, name string, config map[string]string) error {
	if err := workload.CheckName("name", name); err != nil {
		return err
	}
	if p.appconfig == nil {
		return provider.ErrUnsupported(Name, provider.OpApplyConfig, p.UnsupportedReason(provider.OpApplyConfig))
	}
	if err := p.checkConfig(name, config); err != nil {
		return err
	}
	if err := p.permitted(provider.OpApplyConfig); err != nil {
		return err
	}
	groups, err := p.existing(ctx, name)
	if err != nil {
		return err
	}
	if err := checkShape(groups); err != nil {
		return err
	}
	bp, err := blueprintFromGroup(groups[0].cg)
	if err != nil {
		return provider.Wrap(Name, as(workload.ProviderError, err.Error()), err, "ApplyConfig "+name)
	}
	changed, err := p.writeConfig(ctx, name, config)
	if err != nil {
		return err
	}
	after := func(err error) error {
		if changed {
			return provider.AfterChange(Name, err, changesApplied)
		}
		return err
	}
	cfg, err := p.readConfig(ctx, name)
	if err != nil {
		return after(err)
	}
	digest := configDigest(cfg)
	for _, g := range groups {
		if g.stopped() || tag(g.cg, tagConfig) == digest {
			// Stopped groups get the new config when started again
			// (Start and Scale compare the digest); groups that carry
			// it already are left alone.
			continue
		}
		if err := p.recreate(ctx, name, bp, cfg, g.index, g.cg, true); err != nil {
			return after(err)
		}
		changed = true
	}
	return nil
}
