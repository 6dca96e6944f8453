#!/usr/bin/env bash
# The validate action's work (action.yml runs it with its inputs in SKAHA_CI_* variables, from the
# repository's root): install skaha-emulator, build the image (no push), check it against each of its session
# types' contracts, run its own tests as CANFAR sessions, and write a JUnit report of each. The checks and
# the tests both run whatever the other's outcome; the exit status is 0 only when all passed.
#
# Why the image's tests and not `emulate validate`'s smoke run: that run needs the platform (`emulate up`
# builds its images and service, minutes on a fresh runner), while the tests' skaha_session fixture
# launches under the same contract with nothing but a gateway of its own (the uid, /arc, limits, the URL
# prefix, readiness), and the image's own assertions on top.
set -euo pipefail

context=${SKAHA_CI_CONTEXT:-.}
dockerfile=${SKAHA_CI_DOCKERFILE:-}
build=${SKAHA_CI_BUILD:-true}
types=${SKAHA_CI_TYPE:-}
tests=${SKAHA_CI_TESTS-tests}  # set but empty: no tests
reports=${SKAHA_CI_REPORTS:-skaha-reports}
requirements=${SKAHA_CI_REQUIREMENTS:-}
# By default the emulator comes from the action's own checkout (three folders up: the repository's root),
# so the ref a workflow's `uses:` names pins the action and the emulator together.
emulator=${SKAHA_CI_EMULATOR:-${GITHUB_ACTION_PATH:+$GITHUB_ACTION_PATH/../../..}}
image=${SKAHA_CI_IMAGE:-${SKAHA_IMAGE:-}}
TYPE_LABEL=io.canfar.skaha.session.type

grouped=""
step() {  # a folded group of the log on GitHub, a heading elsewhere
    if [[ -z ${GITHUB_ACTIONS:-} ]]; then echo "== $*"; return; fi
    if [[ -n $grouped ]]; then echo "::endgroup::"; fi
    echo "::group::$*"
    grouped=yes
}
fail() {
    if [[ -n ${GITHUB_ACTIONS:-} ]]; then echo "::error::$*"; else echo "error: $*" >&2; fi
}

if [[ -z $emulator ]]; then
    fail "SKAHA_CI_EMULATOR is empty and this is not run as an action: say what pip installs for skaha-emulator"
    exit 2
fi
if [[ -z $image ]]; then
    # The repository's name (the context folder's, outside GitHub), as Docker allows names: lowercase.
    name=${GITHUB_REPOSITORY:-$(basename "$(cd "$context" && pwd)")}
    name=$(printf '%s' "${name##*/}" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9._-' '-' | sed 's/^[._-]*//')
    image="${name:-image}:ci"
fi

step "Install skaha-emulator ($emulator) and pytest${requirements:+, and $requirements}"
install=(pytest "$emulator")
if [[ -n $requirements ]]; then install+=(--requirement "$requirements"); fi
python -m pip install --quiet --disable-pip-version-check "${install[@]}"

if [[ $build == true ]]; then
    step "Build $image from $context (not pushed)"
    build_args=(--tag "$image")
    if [[ -n $dockerfile ]]; then build_args+=(--file "$dockerfile"); fi
    docker build "${build_args[@]}" "$context"
elif ! docker image inspect "$image" >/dev/null 2>&1; then
    fail "$image is not in this runner's Docker engine: build it (with load: true) before this step, or leave build on"
    exit 2
fi

if [[ -z $types ]]; then
    types=$(docker image inspect --format "{{ index .Config.Labels \"$TYPE_LABEL\" }}" "$image")
    if [[ -z $types || $types == "<no value>" ]]; then
        fail "$image has no $TYPE_LABEL label: label it with its session type, or set the action's type input"
        exit 2
    fi
fi

mkdir -p "$reports"
status=0
type_list=()
IFS=', ' read -r -a named <<<"$types"
for type in "${named[@]}"; do if [[ -n $type ]]; then type_list+=("$type"); fi; done
if [[ ${#type_list[@]} -eq 0 ]]; then
    fail "no session type in '$types': name one (notebook, desktop-app, contributed, headless...)"
    exit 2
fi
for type in "${type_list[@]}"; do
    step "Check $image against CANFAR's $type contract"
    emulate validate "$image" --type "$type" --static-only --junit-xml "$reports/validate-$type.xml" || status=1
done

if [[ -z $tests ]]; then
    step "No tests (the tests input is empty): no session of $image was launched"
elif [[ ! -e $tests ]]; then
    fail "no tests at $tests: write some (emulate init-image writes a first tests/test_image.py), or set tests: ''"
    status=1
else
    step "Run $tests with $image as CANFAR sessions (skaha_session)"
    SKAHA_IMAGE=$image pytest "$tests" --junitxml="$reports/tests.xml" || status=1
fi

step "Reports in $reports/"
ls -1 "$reports"
if [[ -n $grouped ]]; then echo "::endgroup::"; fi
exit "$status"
