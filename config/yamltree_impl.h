/* yamltree_impl.h: what the files of the YAML tree share (config/yamltree.c, config/yamlparse.c);
 * not for other folders. */
#ifndef BODHI_CONFIG_YAMLTREE_IMPL_H
#define BODHI_CONFIG_YAMLTREE_IMPL_H

#include <stddef.h>

#include "config/yamltree.h"

/* A node of kind at file:line:col with no children and no text (NULL when out of memory). */
bd_node *bd_yt_node_new(bd_node_kind kind, const char *file, int line, int col);

/* Makes room for `cap` children (keys too for a map). */
int bd_yt_node_reserve(bd_node *n, size_t cap);

/* The index of key in map, or -1 when map is not a map or has no such key. */
long bd_yt_map_find(const bd_node *map, const char *key);

#endif
