# SPDX-License-Identifier: MIT
# discd: the writer daemon. Included from daemon/CMakeLists.txt.
set(DISCD_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/main.c
  ${CMAKE_CURRENT_SOURCE_DIR}/config.c
  ${CMAKE_CURRENT_SOURCE_DIR}/log.c
  ${CMAKE_CURRENT_SOURCE_DIR}/registry/instance.c
  ${CMAKE_CURRENT_SOURCE_DIR}/registry/registry.c
  ${CMAKE_CURRENT_SOURCE_DIR}/registry/protect.c
  ${CMAKE_CURRENT_SOURCE_DIR}/registry/cache_load.c
  ${CMAKE_CURRENT_SOURCE_DIR}/segment/publisher.c
  ${CMAKE_CURRENT_SOURCE_DIR}/control/control.c
  ${CMAKE_CURRENT_SOURCE_DIR}/control/request.c
  ${CMAKE_CURRENT_SOURCE_DIR}/control/fastreq.c
  ${CMAKE_CURRENT_SOURCE_DIR}/control/policy.c
  ${CMAKE_CURRENT_SOURCE_DIR}/checks/health.c
  ${CMAKE_CURRENT_SOURCE_DIR}/checks/sockdiag.c
  ${CMAKE_CURRENT_SOURCE_DIR}/zk/zk_bridge.c
  ${CMAKE_CURRENT_SOURCE_DIR}/metrics/metrics.c
  ${CMAKE_CURRENT_SOURCE_DIR}/service/service.c
  ${CMAKE_CURRENT_SOURCE_DIR}/state/state.c
  ${CMAKE_CURRENT_SOURCE_DIR}/services/services.c
)
# The ZooKeeper layer (library disczk), used when discd runs with --zk.
include(${CMAKE_CURRENT_LIST_DIR}/zk/zk_sync.cmake)

# The daemon's modules without main.c, for tests that exercise them in-process
# (e.g. instance validation) and for the ZooKeeper layer's tests.
add_library(discd_core STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/log.c
  ${CMAKE_CURRENT_SOURCE_DIR}/registry/instance.c
  ${CMAKE_CURRENT_SOURCE_DIR}/registry/registry.c
  ${CMAKE_CURRENT_SOURCE_DIR}/control/policy.c
  ${CMAKE_CURRENT_SOURCE_DIR}/control/fastreq.c
  ${CMAKE_CURRENT_SOURCE_DIR}/state/state.c
)
target_include_directories(discd_core PUBLIC ${DISCD_PART_DIRS})
target_link_libraries(discd_core PUBLIC discpub PkgConfig::URCU PkgConfig::JANSSON PkgConfig::UUID Threads::Threads)

# metrics/: Prometheus exposition over HTTP with libmicrohttpd (libmicrohttpd-dev).
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)

add_executable(discd ${DISCD_SOURCES})
target_compile_definitions(discd PRIVATE DISCD_VERSION="${PROJECT_VERSION}" DISC_HAVE_HEALTH=1)
target_include_directories(discd PRIVATE ${DISCD_PART_DIRS})
target_link_libraries(discd PRIVATE discpub discshm_static disczk PkgConfig::URCU PkgConfig::JANSSON PkgConfig::UUID
  PkgConfig::CURL PkgConfig::MHD PkgConfig::SYSTEMD Threads::Threads)
install(TARGETS discd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR} COMPONENT daemon)
