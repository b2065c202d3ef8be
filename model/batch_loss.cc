#include "model/batch_loss.h"

#include "engine/ops/attention.h"
#include "engine/ops/embedding.h"

namespace la3 {

Tensor batch_loss(const T5Model& model, const Batch& batch, ops::CaptionLoss mode, const T5ForwardOptions& forward,
                  double normaliser) {
  const Device device = model.device();
  const T5Config& config = model.config();
  // Decoder inputs from collate when it shifted with this model's ids, else shifted here (on
  // the host, where the batch is born: no device labels round-trip through the host).
  const bool collated_shift = batch.decoder_input_ids.defined() &&
                              batch.decoder_start_id == config.decoder_start_token_id &&
                              batch.pad_id == config.pad_token_id;
  const Tensor decoder_inputs = collated_shift ? batch.decoder_input_ids
                                               : shift_right(batch.labels, config.decoder_start_token_id, config.pad_token_id);
  // Every integer the ops would read back from the device to validate is validated here, before
  // the upload, with the ops' errors; the ops are then told so and read nothing back.
  // The labels before the decoder inputs made from them, so a bad label is named as one.
  ops::check_embedding_ids(batch.input_ids, config.vocab_size);
  const ops::CaptionLossInputsChecked checked =
      ops::check_caption_loss_inputs(batch.labels, batch.group, config.vocab_size, mode);
  ops::check_embedding_ids(decoder_inputs, config.vocab_size);
  T5ForwardOptions vouched = forward;
  vouched.ids_checked_by_caller = true;
  // Uploads the host does not wait for: the backend holds the host tensors until its next
  // synchronisation (the step's readback), and nothing writes them. The mask becomes the
  // attention kernels' i32 flags on the host: converting a device mask copies it back and forth.
  const Tensor mask = batch.attention_mask.defined()
                          ? ops::key_mask_as_flags(batch.attention_mask.to_device(Device::cpu())).to_device_async(device)
                          : Tensor();
  const Tensor labels = batch.labels.to_device_async(device);
  const Tensor group =
      Tensor::from_vector<int64_t>({static_cast<int64_t>(batch.group.size())}, batch.group).to_device_async(device);
  // model.logits() without its shift_right: encode, then decode the uploaded decoder inputs.
  const Tensor encoded = model.encode(batch.input_ids.to_device_async(device), mask, vouched);
  const Tensor logits = model.decode(decoder_inputs.to_device_async(device), encoded, mask, vouched);
  return ops::caption_loss_from_logits(logits, labels, group, mode, -100, normaliser, &checked);
}

}  // namespace la3
