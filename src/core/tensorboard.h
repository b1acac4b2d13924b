/* tensorboard.h: TensorBoard event files (--tensorboard-dir), written
 * directly: no TensorFlow or protobuf library.
 *
 * An event file is a sequence of TFRecords, each
 *     uint64 length | uint32 masked CRC-32C of length | data | uint32 masked CRC-32C of data
 * (little-endian; masked crc = ((crc >> 15) | (crc << 17)) + 0xa282ead8),
 * whose data is a serialized tensorflow.Event protobuf: wall_time (field 1,
 * double), step (2, int64), then either file_version (3, the string
 * "brain.Event:2", the first record) or summary (5: a Summary of one
 * Value { tag (1, string), simple_value (2, float) }). The file is named
 * events.out.tfevents.<seconds>.<host>, as TensorBoard's writers name
 * theirs, so that `tensorboard --logdir DIR` and its event_accumulator
 * read it. */
#ifndef MT_TENSORBOARD_H
#define MT_TENSORBOARD_H
#include <stddef.h>
#include <stdint.h>

struct mt_tb;
/* Creates DIR (mkdir -p) and a new event file in it; exits with a message
 * naming DIR when that fails. */
struct mt_tb *mt_tb_open(const char *dir);
/* One scalar at a step. Write errors are reported as log errors (core/io.h:
 * the run goes on and exits with status 1). */
void mt_tb_scalar(struct mt_tb *tb, const char *tag, double value, int64_t step);
void mt_tb_flush(struct mt_tb *tb);
void mt_tb_close(struct mt_tb *tb);

#endif
