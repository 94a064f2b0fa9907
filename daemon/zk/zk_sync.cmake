# SPDX-License-Identifier: MIT
# disczk: the ZooKeeper sync module of discd (zk_sync.h). Included by
# tests/zk, benchmarks/zk.cmake and discd; defined once.
# zk_batch.c: batches of async requests (zk_batch.h), shared by zk_sync.c,
# import.c and export.c. import.c: foreign registries (import.h), on
# zk_sync's session, through the formats of formats/ (library discfmt). export.c: discd's local instances in
# Curator x-discovery form (export.h).
include(${CMAKE_CURRENT_LIST_DIR}/formats/formats.cmake)
if(NOT TARGET disczk)
  add_library(disczk STATIC
    ${CMAKE_CURRENT_LIST_DIR}/zk_sync.c
    ${CMAKE_CURRENT_LIST_DIR}/zk_batch.c
    ${CMAKE_CURRENT_LIST_DIR}/zk_snapshot.c
    ${CMAKE_CURRENT_LIST_DIR}/import.c
    ${CMAKE_CURRENT_LIST_DIR}/export.c
  )
  target_include_directories(disczk PUBLIC ${CMAKE_CURRENT_LIST_DIR} ${ZOOKEEPER_INCLUDE_DIR})
  target_compile_definitions(disczk PUBLIC THREADED)
  target_link_libraries(disczk PUBLIC discfmt ${ZOOKEEPER_MT_LIB} PkgConfig::JANSSON PkgConfig::ZLIB Threads::Threads)
endif()
