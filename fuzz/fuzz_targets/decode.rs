//! Decodes arbitrary bytes as an image. Decoding must never panic; an image
//! that decodes must frame again into one that decodes to the same metadata.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((header, image)) = dumpfmt::decode(data) else {
        return;
    };
    // A decoded image is consistent, so its page data is exactly the bytes
    // between the header page and the metadata.
    let pages = &data[dumpfmt::HEADER_LEN as usize..header.meta_offset as usize];
    let again = dumpfmt::frame(&image, pages);
    let (header2, image2) = dumpfmt::decode(&again).expect("a re-framed image decodes");
    assert_eq!(image2, image);
    assert_eq!(header2.meta_offset, header.meta_offset);
    assert!(again.len() <= data.len());
});
