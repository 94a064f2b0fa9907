# SPDX-License-Identifier: MIT
# discfmt: the foreign registry formats (format.h), one file each. Used by
# disczk (the import engine), discd (config checks), tests and fuzz/.
if(NOT TARGET discfmt)
  add_library(discfmt STATIC
    ${CMAKE_CURRENT_LIST_DIR}/fmt_common.c
    ${CMAKE_CURRENT_LIST_DIR}/dubbo.c
    ${CMAKE_CURRENT_LIST_DIR}/serverset.c
    ${CMAKE_CURRENT_LIST_DIR}/kitex.c
    ${CMAKE_CURRENT_LIST_DIR}/curator.c
  )
  target_include_directories(discfmt PUBLIC ${CMAKE_CURRENT_LIST_DIR})
  target_link_libraries(discfmt PUBLIC PkgConfig::JANSSON PkgConfig::UUID)
endif()
