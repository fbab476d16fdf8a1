package httpapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// An access token is base64url(payload) "." base64url(HMAC-SHA256(key,
// payload)), with payload = version byte 1, expiry (unix ms, uint64
// big-endian), then sale, buyer and token id, each a length byte and bytes.
// It is verified with the key alone, no actor involved. The token id is the
// buyer's queue id: one admission, one token.
const (
	tokenVersion  = 1
	tokenBytesMax = 512 // 3 ids of at most 64 bytes plus framing, in base64, with room
)

var errToken = errors.New("access token is not valid")

// accessClaims is what a valid token says.
type accessClaims struct {
	Sale, Buyer, ID string
	Expires         int64 // unix ms
}

type signer struct {
	key  []byte
	macs *sync.Pool // of hash.Hash: HMAC-SHA256 under key, reset before use
}

func newSigner(key []byte) signer {
	return signer{key: key, macs: &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// mac returns HMAC-SHA256(key, p).
func (s signer) mac(p []byte) []byte {
	m := s.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(p)
	out := m.Sum(nil)
	s.macs.Put(m)
	return out
}

func (s signer) sign(c accessClaims) string {
	p := make([]byte, 0, 9+3+len(c.Sale)+len(c.Buyer)+len(c.ID))
	p = append(p, tokenVersion)
	p = binary.BigEndian.AppendUint64(p, uint64(c.Expires))
	for _, f := range []string{c.Sale, c.Buyer, c.ID} {
		p = append(p, byte(len(f)))
		p = append(p, f...)
	}
	return base64.RawURLEncoding.EncodeToString(p) + "." + base64.RawURLEncoding.EncodeToString(s.mac(p))
}

// verify checks a token's signature and form; the caller checks expiry and
// sale.
func (s signer) verify(tok string) (accessClaims, error) {
	var c accessClaims
	if len(tok) > tokenBytesMax {
		return c, errToken
	}
	dot := strings.IndexByte(tok, '.')
	if dot < 0 {
		return c, errToken
	}
	p, err1 := base64.RawURLEncoding.DecodeString(tok[:dot])
	sig, err2 := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err1 != nil || err2 != nil {
		return c, errToken
	}
	if !hmac.Equal(sig, s.mac(p)) {
		return c, errToken
	}
	if len(p) < 9 || p[0] != tokenVersion {
		return c, errToken
	}
	c.Expires = int64(binary.BigEndian.Uint64(p[1:9]))
	rest := p[9:]
	var fields [3]string
	for i := range fields {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return c, errToken
		}
		n := int(rest[0])
		fields[i] = string(rest[1 : 1+n])
		rest = rest[1+n:]
	}
	if len(rest) != 0 {
		return c, errToken
	}
	c.Sale, c.Buyer, c.ID = fields[0], fields[1], fields[2]
	return c, nil
}

// equalToken compares secrets in constant time.
func equalToken(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Secrets are the server's keys, kept in the data directory so that they
// outlive a restart.
type Secrets struct {
	AdminToken string
	SigningKey []byte
	// NewAdminToken is set when the admin token was made at this start: the
	// caller prints it once.
	NewAdminToken bool
}

const (
	adminTokenFile = "admin-token"
	signingKeyFile = "signing-key"
)

// LoadSecrets reads the signing key and admin token from dir, making them at
// first start. A non-empty adminToken (from a flag or the environment) wins
// over the stored one and is not written.
func LoadSecrets(dir, adminToken string) (Secrets, error) {
	var s Secrets
	key, _, err := readOrMake(filepath.Join(dir, signingKeyFile), 32)
	if err != nil {
		return s, err
	}
	s.SigningKey = key
	if adminToken != "" {
		s.AdminToken = adminToken
		return s, nil
	}
	tok, made, err := readOrMake(filepath.Join(dir, adminTokenFile), 24)
	if err != nil {
		return s, err
	}
	s.AdminToken, s.NewAdminToken = string(tok), made
	return s, nil
}

// readOrMake returns the file's bytes, or writes n random bytes as hex to it
// (temp file, fsync, rename, fsync dir) and returns those.
func readOrMake(path string, n int) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		v := strings.TrimSpace(string(b))
		if v == "" {
			return nil, false, fmt.Errorf("%s is empty: delete it to make a new one", path)
		}
		return []byte(v), false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		return nil, false, err
	}
	v := hex.EncodeToString(raw)
	if err := writeFileSync(path, []byte(v+"\n")); err != nil {
		return nil, false, err
	}
	return []byte(v), true, nil
}

func writeFileSync(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return d.Close()
}
