# SPDX-License-Identifier: Apache-2.0
# The .deb's generated files, in BUILD/deb: the machine-readable copyright
# (DEP-5) and the changelog of this native package, both from what the tree
# already holds (the licenses in LICENSES/, PROJECT_VERSION), so neither
# repeats a license text or a version by hand.
set(EXF_DEB_DIR ${PROJECT_BINARY_DIR}/deb)
file(MAKE_DIRECTORY ${EXF_DEB_DIR})

# A license text as a DEP-5 paragraph body: each line indented by one space,
# an empty line as " .".
function(exf_dep5_text file out)
  file(STRINGS ${file} lines)
  set(text "")
  foreach(line IN LISTS lines)
    if(line STREQUAL "")
      string(APPEND text " .\n")
    else()
      string(APPEND text " ${line}\n")
    endif()
  endforeach()
  string(REGEX REPLACE "\n$" "" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

exf_dep5_text(${PROJECT_SOURCE_DIR}/LICENSES/BSD-2-Clause.txt EXF_BSD_2_CLAUSE_TEXT)
configure_file(${PROJECT_SOURCE_DIR}/configs/deb/copyright.in ${EXF_DEB_DIR}/copyright @ONLY)

# One entry for the version built. Its date is the last commit's, so that
# the same tree makes the same package; SOURCE_DATE_EPOCH overrides it.
set(EXF_CHANGELOG_EPOCH "$ENV{SOURCE_DATE_EPOCH}")
if(NOT EXF_CHANGELOG_EPOCH)
  execute_process(COMMAND git -C ${PROJECT_SOURCE_DIR} log -1 --format=%ct
                  OUTPUT_VARIABLE EXF_CHANGELOG_EPOCH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()
if(NOT EXF_CHANGELOG_EPOCH)
  set(EXF_CHANGELOG_EPOCH 0)
endif()
execute_process(COMMAND date -u -R -d @${EXF_CHANGELOG_EPOCH}
                OUTPUT_VARIABLE EXF_CHANGELOG_DATE OUTPUT_STRIP_TRAILING_WHITESPACE)
file(WRITE ${EXF_DEB_DIR}/changelog
"exfilmon (${PROJECT_VERSION}) unstable; urgency=medium

  * exfilmon ${PROJECT_VERSION}. What it does and how to deploy it:
    /usr/share/doc/exfilmon/README.md and deploy.md.

 -- ${CPACK_PACKAGE_CONTACT}  ${EXF_CHANGELOG_DATE}
")
execute_process(COMMAND gzip -9n -f ${EXF_DEB_DIR}/changelog)
