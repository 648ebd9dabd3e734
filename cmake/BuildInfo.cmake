# SPDX-License-Identifier: Apache-2.0
# Run at every build (cmake -P, from the exfilmon_build_info target): writes
# OUT from IN with the source tree's git commit, so that `exfilmon version`
# names the commit it was built from, not the one CMake was configured at.
# configure_file() rewrites OUT only when its text changes: a build at the
# same commit recompiles nothing.
# -D: SOURCE_DIR, IN, OUT, and the configure-time values IN uses.
execute_process(COMMAND git -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
                OUTPUT_VARIABLE EXFILMON_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE rc ERROR_QUIET)
if(NOT rc EQUAL 0)
  # A source tarball: no git.
  set(EXFILMON_GIT_COMMIT unknown)
else()
  execute_process(COMMAND git -C "${SOURCE_DIR}" diff --quiet HEAD RESULT_VARIABLE dirty
                  ERROR_QUIET)
  if(NOT dirty EQUAL 0)
    string(APPEND EXFILMON_GIT_COMMIT "-dirty")
  endif()
endif()
configure_file("${IN}" "${OUT}" @ONLY)
