package modelreg

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
)

// The id rules of modelreg_api.names (the services check them too; checking here gives a
// precise message before any call).
var (
	namespaceID = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	modelID     = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)
	aliasID     = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
)

// VersionRef is a version by number or by alias.
type VersionRef struct {
	Namespace, Model string
	Number           int64  // > 0 for a version by number
	Alias            string // set for a version by alias
}

// Model is `namespaces/{ns}/models/{model}`.
func (r VersionRef) ModelName() string {
	return "namespaces/" + r.Namespace + "/models/" + r.Model
}

// Name is the resource name: `.../versions/{n}` or `.../aliases/{alias}`.
func (r VersionRef) Name() string {
	if r.Alias != "" {
		return r.ModelName() + "/aliases/" + r.Alias
	}
	return r.ModelName() + "/versions/" + strconv.FormatInt(r.Number, 10)
}

func (r VersionRef) String() string { return r.Name() }

func invalidName(format string, args ...any) error {
	return localError(codes.InvalidArgument, "INVALID_ARGUMENT", format, args...)
}

// ParseModelRef reads `namespace/model` or `namespaces/{ns}/models/{model}`.
func ParseModelRef(text string) (namespace, model string, err error) {
	parts := strings.Split(text, "/")
	switch {
	case len(parts) == 2:
		namespace, model = parts[0], parts[1]
	case len(parts) == 4 && parts[0] == "namespaces" && parts[2] == "models":
		namespace, model = parts[1], parts[3]
	default:
		return "", "", invalidName("%q is not a model: use namespace/model", quoted(text))
	}
	if !namespaceID.MatchString(namespace) {
		return "", "", invalidName("%q is not a namespace id", quoted(namespace))
	}
	if !modelID.MatchString(model) {
		return "", "", invalidName("%q is not a model id", quoted(model))
	}
	return namespace, model, nil
}

// ParseVersionRef reads `namespace/model@alias`, `namespace/model/3`, or the resource names
// `namespaces/{ns}/models/{model}/versions/{n}` and `.../aliases/{alias}`.
func ParseVersionRef(text string) (VersionRef, error) {
	var model, tail string
	byAlias := false
	if strings.HasPrefix(text, "namespaces/") {
		parts := strings.Split(text, "/")
		if len(parts) != 6 || (parts[4] != "versions" && parts[4] != "aliases") {
			return VersionRef{}, invalidName("%q is not a version or alias resource name", quoted(text))
		}
		model, tail, byAlias = strings.Join(parts[:4], "/"), parts[5], parts[4] == "aliases"
	} else if before, after, found := strings.Cut(text, "@"); found {
		model, tail, byAlias = before, after, true
	} else {
		i := strings.LastIndex(text, "/")
		if i < 0 || strings.Count(text, "/") != 2 {
			return VersionRef{}, invalidName("%q is not of the form namespace/model@alias or namespace/model/NUMBER", quoted(text))
		}
		model, tail = text[:i], text[i+1:]
	}
	namespace, modelName, err := ParseModelRef(model)
	if err != nil {
		return VersionRef{}, err
	}
	ref := VersionRef{Namespace: namespace, Model: modelName}
	if byAlias {
		if !aliasID.MatchString(tail) {
			return VersionRef{}, invalidName("%q is not an alias id", quoted(tail))
		}
		ref.Alias = tail
		return ref, nil
	}
	number, err := strconv.ParseInt(tail, 10, 64)
	if err != nil || number <= 0 {
		return VersionRef{}, invalidName("%q is not a version number", quoted(tail))
	}
	ref.Number = number
	return ref, nil
}

// CheckFilePath refuses a manifest path that could escape a directory or mean different files
// on different systems: empty, absolute, backslashes, control characters, empty/./.. segments.
func CheckFilePath(path string) error {
	switch {
	case path == "":
		return invalidName("file path is empty")
	case len(path) > 1024:
		return invalidName("file path is longer than 1024 bytes")
	case strings.Contains(path, `\`):
		return invalidName("file path %q contains a backslash", quoted(path))
	case strings.HasPrefix(path, "/"):
		return invalidName("file path %q is absolute", quoted(path))
	}
	for _, r := range path {
		if r < 0x20 || r == 0x7f {
			return invalidName("file path %q contains a control character", quoted(path))
		}
	}
	for _, segment := range strings.Split(path, "/") {
		if segment == "" || segment == "." || segment == ".." {
			return invalidName("file path %q has an empty, '.' or '..' segment", quoted(path))
		}
	}
	return nil
}

// quoted is at most the first 64 characters of what was given, as the services quote.
func quoted(text string) string {
	runes := []rune(text)
	if len(runes) <= 64 {
		return text
	}
	return fmt.Sprintf("%s... (%d characters)", string(runes[:64]), len(runes))
}
