# SPDX-License-Identifier: MIT
# discctl: the operator CLI. Reads the segment through libdiscshm, writes
# through discd's control socket with libdiscclient. See docs/DISCCTL.md.
add_executable(discctl
  ${CMAKE_CURRENT_SOURCE_DIR}/discctl.c
  ${CMAKE_CURRENT_SOURCE_DIR}/discctl_help.c
  ${CMAKE_CURRENT_SOURCE_DIR}/discctl_util.c
  ${CMAKE_CURRENT_SOURCE_DIR}/discctl_read.c
  ${CMAKE_CURRENT_SOURCE_DIR}/discctl_filter.c
  ${CMAKE_CURRENT_SOURCE_DIR}/discctl_pick.c
  ${CMAKE_CURRENT_SOURCE_DIR}/discctl_watch.c
  ${CMAKE_CURRENT_SOURCE_DIR}/discctl_write.c
  ${CMAKE_CURRENT_SOURCE_DIR}/discctl_protect.c
  ${CMAKE_CURRENT_SOURCE_DIR}/discctl_metrics.c
  ${CMAKE_CURRENT_SOURCE_DIR}/discctl_stale.c
  ${CMAKE_CURRENT_SOURCE_DIR}/discctl_reload.c
  ${CMAKE_CURRENT_SOURCE_DIR}/discctl_checks.c
)
target_compile_definitions(discctl PRIVATE DISCCTL_VERSION="${PROJECT_VERSION}")
target_link_libraries(discctl PRIVATE discshm_static discclient_static PkgConfig::JANSSON)
install(TARGETS discctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT daemon)
