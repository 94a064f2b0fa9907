# SPDX-License-Identifier: MIT
# disczk: the ZooKeeper sync module of discd (zk_sync.h). Included by
# tests/zk, benchmarks/zk.cmake and discd; defined once.
if(NOT TARGET disczk)
  add_library(disczk STATIC
    ${CMAKE_CURRENT_LIST_DIR}/zk_sync.c
    ${CMAKE_CURRENT_LIST_DIR}/zk_snapshot.c
  )
  target_include_directories(disczk PUBLIC ${CMAKE_CURRENT_LIST_DIR} ${ZOOKEEPER_INCLUDE_DIR})
  target_compile_definitions(disczk PUBLIC THREADED)
  target_link_libraries(disczk PUBLIC ${ZOOKEEPER_MT_LIB} PkgConfig::JANSSON PkgConfig::ZLIB Threads::Threads)
endif()
