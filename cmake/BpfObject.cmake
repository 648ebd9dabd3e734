# SPDX-License-Identifier: Apache-2.0
# bpf_object(NAME SOURCE [DEPENDS headers...])
# Compiles SOURCE with clang for the BPF target and generates NAME.skel.h with
# bpftool; defines an INTERFACE target NAME_skel whose include dir holds it.
# The skeleton embeds the object: nothing is read from disk at run time.
find_program(BPF_CLANG NAMES clang clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch
                OUTPUT_VARIABLE BPF_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT BPF_MULTIARCH)
  set(BPF_MULTIARCH x86_64-linux-gnu)
endif()

function(bpf_object name src)
  cmake_parse_arguments(ARG "" "" "DEPENDS" ${ARGN})
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR})
  set(obj ${out_dir}/${name}.bpf.o)
  set(skel ${out_dir}/${name}.skel.h)
  get_filename_component(src_abs ${src} ABSOLUTE)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -target bpf -O2 -g -mcpu=v3 -D__TARGET_ARCH_x86
            -Wall -Werror -I/usr/include/${BPF_MULTIARCH}
            -I${PROJECT_SOURCE_DIR}/bpf -c ${src_abs} -o ${obj}
    DEPENDS ${src_abs} ${ARG_DEPENDS}
    COMMENT "BPF ${name}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skelgen DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skelgen)
  target_include_directories(${name}_skel INTERFACE ${out_dir})
  target_link_libraries(${name}_skel INTERFACE PkgConfig::LIBBPF)
endfunction()
