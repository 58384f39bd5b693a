/* The WAL-write-gathering SQLite VFS (_walvfs.c), part of the _sqlwriter extension. */
#ifndef IZH_WALVFS_H
#define IZH_WALVFS_H

#define IZH_WALVFS_NAME "izh-walbuf"

int izh_walvfs_register(void);

#endif
