package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/registry"
)

// loginFlags are the values of `kiln login`'s flags.
type loginFlags struct {
	connectionFlags
	username, password string
	passwordStdin      bool
	swrRegion, ak, sk  string
	check              bool
}

func newLoginCommand() *cobra.Command {
	f := &loginFlags{}
	cmd := &cobra.Command{
		Use:   "login REGISTRY -u USER --password-stdin | login --swr-region REGION --ak AK --sk SK",
		Short: "Check registry credentials and store them in a docker config.json",
		Long: `Check credentials against a registry and store them as docker login does: in
the config.json of --docker-config, $DOCKER_CONFIG or ~/.docker (mode 0600,
other entries kept), or in the credential helper that file names.

A Harbor robot account's name holds "$": quote it for the shell,
-u 'robot$project+ci'. For Huawei Cloud SWR, --swr-region with an access key
pair (--ak, and --sk or the secret key on stdin with --password-stdin) derives
the long-term login: user REGION@AK, password hex(HMAC-SHA256(SK, AK)).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLogin(cmd, f, args)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVarP(&f.username, "username", "u", "", "user name")
	fl.StringVarP(&f.password, "password", "p", "", "password (visible to other processes: prefer --password-stdin)")
	fl.BoolVar(&f.passwordStdin, "password-stdin", false, "read the password (or the SWR secret key) from standard input")
	fl.StringVar(&f.swrRegion, "swr-region", "", "Huawei Cloud SWR region (e.g. cn-north-4): log in to swr.REGION.myhuaweicloud.com with --ak and --sk")
	fl.StringVar(&f.ak, "ak", "", "SWR access key ID")
	fl.StringVar(&f.sk, "sk", "", "SWR secret access key (visible to other processes: prefer --password-stdin)")
	fl.BoolVar(&f.check, "check", true, "check the credentials against the registry before storing them")
	addConnectionFlags(fl, &f.connectionFlags)
	return cmd
}

func runLogin(cmd *cobra.Command, f *loginFlags, args []string) error {
	log := logrus.StandardLogger()
	var secret string
	if f.passwordStdin {
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
		secret = strings.TrimRight(string(b), "\r\n")
	}
	host, auth, err := loginCredentials(f, args, secret, log)
	if err != nil {
		return err
	}
	if f.check {
		// The check uses the credentials given, none stored: the
		// --docker-config directory need not exist yet.
		conn := f.connectionFlags
		conn.dockerConfig, conn.dockerConfigSet = "", false
		opts, err := conn.options(log)
		if err != nil {
			return err
		}
		c, err := registry.New(opts...)
		if err != nil {
			return err
		}
		if err := c.CheckCredentials(cmd.Context(), host, auth); err != nil {
			return err
		}
	}
	path, err := registry.LoginConfigPath(f.dockerConfig)
	if err != nil {
		return err
	}
	where, err := registry.SaveCredentials(path, host, auth)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Login Succeeded: credentials for %q (user %q) stored in %s\n", host, auth.Username, where)
	return nil
}

// loginCredentials works out the registry and credentials from the flags;
// secret is what standard input held.
func loginCredentials(f *loginFlags, args []string, secret string, log logrus.FieldLogger) (string, authn.AuthConfig, error) {
	if f.password != "" && f.passwordStdin {
		return "", authn.AuthConfig{}, errors.New("--password and --password-stdin exclude each other")
	}
	if f.swrRegion != "" {
		if f.username != "" || f.password != "" {
			return "", authn.AuthConfig{}, errors.New("--swr-region derives the user and password from --ak and --sk: drop --username and --password")
		}
		sk := f.sk
		if f.passwordStdin {
			if sk != "" {
				return "", authn.AuthConfig{}, errors.New("--sk and --password-stdin exclude each other")
			}
			sk = secret
		}
		host, auth, err := registry.SWRLogin(f.swrRegion, f.ak, sk)
		if err != nil {
			return "", auth, err
		}
		if len(args) == 1 { // another SWR endpoint than the public one
			host = loginHost(args[0])
		}
		return host, auth, nil
	}
	if len(args) == 0 {
		return "", authn.AuthConfig{}, errors.New("give the registry: kiln login REGISTRY (docker.io for Docker Hub)")
	}
	if f.username == "" {
		return "", authn.AuthConfig{}, errors.New("give the user name with --username")
	}
	password := f.password
	if f.passwordStdin {
		password = secret
	} else if password != "" {
		log.Warn("--password is visible to other processes on this machine: prefer --password-stdin")
	}
	if password == "" {
		return "", authn.AuthConfig{}, errors.New("give the password on standard input with --password-stdin")
	}
	return loginHost(args[0]), authn.AuthConfig{Username: f.username, Password: password}, nil
}

// loginHost accepts a registry the way docker login does, with a scheme
// and a trailing slash.
func loginHost(s string) string {
	for _, scheme := range []string{"https://", "http://"} {
		s = strings.TrimPrefix(s, scheme)
	}
	return strings.TrimSuffix(s, "/")
}
