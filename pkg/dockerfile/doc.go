// Package dockerfile is kiln's Dockerfile front end: it parses a Dockerfile
// with BuildKit's parser and instruction types, resolves the stage graph for
// a target into a Plan, and expands ARG and ENV variables the way Docker
// does.
//
// Parse reads the file once; Plan applies the build arguments, the target and
// the platforms, and returns the stages the target needs. Expansion happens
// later, while the executor runs each stage, because the environment of the
// base image (known only once it is pulled) takes part in it. The executor
// keeps one Scope per stage:
//
//	scope := plan.NewScope(stage, baseConfig.Env) // or baseStageScope.Child(stage)
//	for _, cmd := range stage.Commands {
//		x, err := scope.ExpandCommand(cmd) // an expanded copy; cmd is never changed
//		...
//		switch c := x.(type) {
//		case *instructions.ArgCommand:
//			for _, a := range c.Args {
//				arg, err := scope.DeclareArg(a) // arg.Value resolved, for history
//				...
//			}
//		case *instructions.EnvCommand:
//			for _, kv := range c.Env {
//				scope.SetEnv(kv.Key, kv.Value)
//			}
//		case *instructions.CopyCommand:
//			// c.From is resolved in stage.CopyFrom[cmd.(*instructions.CopyCommand)]
//		case *instructions.RunCommand:
//			// run with scope.RunEnv(), record scope.DeclaredArgs() in history
//		}
//	}
//
// Expansion is pure; ARG and ENV change the scope only when the executor
// applies them. Errors are *Error values ("Dockerfile:12: COPY ...: cause");
// Dockerfile.CommandError formats the executor's own errors the same way.
//
// Semantics follow Docker: ARGs before the first FROM are visible only in FROM
// lines unless a stage declares them again; an ARG's name is expanded like its
// value ("ARG ${tool}_VERSION=1", as the classic builder and kaniko do); a build argument overrides an
// ARG's default; an ENV (of the base image or the Dockerfile) wins over an ARG
// of the same name; a stage based on another stage inherits its environment
// and its declared ARGs; build arguments no ARG declares are invisible,
// except the predefined proxy variables, which reach RUN only.
package dockerfile
