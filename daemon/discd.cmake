# discd: the writer daemon. Included from daemon/CMakeLists.txt.
set(DISCD_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/main.c
  ${CMAKE_CURRENT_SOURCE_DIR}/config.c
  ${CMAKE_CURRENT_SOURCE_DIR}/log.c
  ${CMAKE_CURRENT_SOURCE_DIR}/instance.c
  ${CMAKE_CURRENT_SOURCE_DIR}/registry.c
  ${CMAKE_CURRENT_SOURCE_DIR}/publisher.c
  ${CMAKE_CURRENT_SOURCE_DIR}/control.c
  ${CMAKE_CURRENT_SOURCE_DIR}/zk_bridge.c
  ${CMAKE_CURRENT_SOURCE_DIR}/protect.c
  ${CMAKE_CURRENT_SOURCE_DIR}/cache_load.c
)
# The ZooKeeper layer (library disczk), used when discd runs with --zk.
include(${CMAKE_CURRENT_LIST_DIR}/zk_sync.cmake)

# The daemon's modules without main.c, for tests that exercise them in-process
# (e.g. instance validation) and for the ZooKeeper layer's tests.
add_library(discd_core STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/log.c
  ${CMAKE_CURRENT_SOURCE_DIR}/instance.c
  ${CMAKE_CURRENT_SOURCE_DIR}/registry.c
)
target_include_directories(discd_core PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(discd_core PUBLIC discpub PkgConfig::URCU PkgConfig::JANSSON PkgConfig::UUID Threads::Threads)

add_executable(discd ${DISCD_SOURCES})
target_compile_definitions(discd PRIVATE DISCD_VERSION="${PROJECT_VERSION}")
# The health checker (tcp/http/ttl) is written separately; link it when present.
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/health.c)
  target_sources(discd PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/health.c)
  target_compile_definitions(discd PRIVATE DISC_HAVE_HEALTH=1)
  target_link_libraries(discd PRIVATE PkgConfig::CURL)
endif()
target_include_directories(discd PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(discd PRIVATE discpub discshm_static disczk PkgConfig::URCU PkgConfig::JANSSON PkgConfig::UUID Threads::Threads)
install(TARGETS discd)
